mod attach;
mod common;
mod damage;
mod errors;
mod record;
mod signals;
