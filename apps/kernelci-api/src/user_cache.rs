//! A short-lived cache of authenticated users, so that a burst of requests with the same
//! token costs one user lookup, not one per request.
//!
//! Entries live [`TTL`]; this process forgets a user as soon as it changes or deletes it. A
//! change made through another process takes effect here within [`TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kernelci_model::{ObjectId, User};

/// How long an entry is trusted.
pub const TTL: Duration = Duration::from_secs(2);
/// Entries kept at most (the map is cleared when full; users are few).
const CAPACITY: usize = 10_000;

/// The cache.
#[derive(Default)]
pub struct UserCache {
    entries: Mutex<HashMap<ObjectId, (User, Instant)>>,
}

impl UserCache {
    /// A fresh entry for `id`, if any.
    pub fn get(&self, id: &ObjectId) -> Option<User> {
        let entries = self.entries.lock().ok()?;
        let (user, at) = entries.get(id)?;
        (at.elapsed() < TTL).then(|| user.clone())
    }

    /// Remember a user just read from the store.
    pub fn put(&self, user: &User) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(user.id, (user.clone(), Instant::now()));
        }
    }

    /// Forget a user that changed.
    pub fn forget(&self, id: &ObjectId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets() {
        let cache = UserCache::default();
        let user = User {
            id: ObjectId::generate(),
            email: "a@b.c".into(),
            hashed_password: String::new(),
            is_active: true,
            is_superuser: false,
            is_verified: true,
            username: "a".into(),
            groups: vec![],
        };
        assert!(cache.get(&user.id).is_none());
        cache.put(&user);
        assert_eq!(cache.get(&user.id), Some(user.clone()));
        cache.forget(&user.id);
        assert!(cache.get(&user.id).is_none());
    }
}
