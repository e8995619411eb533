//! End-to-end tests: the real `weft` binary recording real programs (built
//! from tests/programs/*.c) through the real kernel.

mod suite;
