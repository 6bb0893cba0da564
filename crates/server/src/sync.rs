//! Locking that shrugs off poisoning. Every std `Mutex` in the services guards state that stays
//! consistent at each step of its critical sections, so a panic elsewhere while one was held
//! leaves nothing half-done, and refusing the lock from then on would only turn one failure
//! into many.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
