mod attach;
mod common;
mod damage;
mod errors;
mod probe;
mod record;
mod sampling;
mod signals;
