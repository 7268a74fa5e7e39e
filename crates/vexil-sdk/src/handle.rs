//! Flag handles: one flag's reads on a hot path, without the per-read map look-up.
//!
//! A handle keeps the flag's cache entry (an `Arc`) with the cache generation it was taken from. A read compares
//! that generation with the client's current one (one atomic load); only when the cache has changed since does
//! it look the flag up again. The answer is the same as the client's getters give: same overrides, same engine.
//!
//! A handle counts its evaluations in plain cells of its own (it is not `Sync`), and adds them to the flag's shared
//! counters when it looks the flag up again: after a cache change, after each metrics send (which bumps the
//! generation for that reason), and when it is dropped. So a read counts with one non-atomic increment.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vexil_core::EvaluationContext;

use crate::cache::{CacheOrigin, FlagEntry};
use crate::client::Shared;
use crate::details::{EvaluationDetails, FlagValue, details_of, report_error, resolve_entry, value_of};

/// A handle on one flag of type `T` (`bool`, `String`, `f64` or `serde_json::Value`), from [`VexilClient::flag`](crate::VexilClient::flag).
///
/// Cheap to create and to clone. It is `Send` but not `Sync`: give each thread its own (clone it), which is
/// what keeps its reads free of shared writes.
pub struct FlagHandle<T> {
    shared: Arc<Shared>,
    name: String,
    cached: RefCell<Cached>,
    _type: PhantomData<fn() -> T>,
}

struct Cached {
    generation: u64,
    entry: Option<Arc<FlagEntry>>,
    origin: CacheOrigin,
    /// Evaluations per label of `entry` not yet added to its counters.
    pending: Box<[Cell<u64>]>,
    /// The entry's stored state answers directly: it has a compiled state of the handle's type and no override.
    direct: bool,
}

impl Cached {
    /// Adds the pending counts to the entry's shared counters.
    fn hand_over(&self) {
        let Some(entry) = &self.entry else { return };
        for (slot, count) in self.pending.iter().enumerate() {
            let count = count.take();
            if count > 0 {
                entry.counters.add_evaluations(slot as u16, count);
            }
        }
    }

    fn of(generation: u64, entry: Option<Arc<FlagEntry>>, origin: CacheOrigin, flag_type: vexil_core::FlagType) -> Self {
        let labels = entry.as_ref().map(|entry| entry.counters.len()).unwrap_or(0);
        let direct = entry
            .as_ref()
            .is_some_and(|entry| entry.definition.flag_type == flag_type && entry.override_value.is_none() && entry.compiled.is_some());
        Self { generation, entry, origin, pending: (0..labels).map(|_| Cell::new(0)).collect(), direct }
    }

    #[inline]
    fn count(&self, slot: u16) {
        if let Some(pending) = self.pending.get(usize::from(slot)) {
            pending.set(pending.get() + 1);
        }
    }
}

impl<T> Drop for FlagHandle<T> {
    fn drop(&mut self) {
        self.cached.get_mut().hand_over();
    }
}

impl<T: FlagValue> Clone for FlagHandle<T> {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone(), &self.name)
    }
}

impl<T> std::fmt::Debug for FlagHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagHandle").field("flag", &self.name).finish()
    }
}

impl<T: FlagValue> FlagHandle<T> {
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        // u64::MAX never matches a real generation, so the first read looks the flag up.
        let cached = Cached::of(u64::MAX, None, CacheOrigin::Empty, T::FLAG_TYPE);
        Self { shared, name: name.to_owned(), cached: RefCell::new(cached), _type: PhantomData }
    }

    /// The flag's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn current(&self) -> std::cell::Ref<'_, Cached> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if self.cached.borrow().generation != generation {
            self.cached.borrow().hand_over();
            let cache = self.shared.read_cache();
            let entry = cache.flags.get(&self.name).cloned();
            *self.cached.borrow_mut() = Cached::of(generation, entry, cache.origin, T::FLAG_TYPE);
        }
        self.cached.borrow()
    }

    /// The flag's value for `context`, or `fallback`: the same answer as the client's typed getter.
    pub fn value<C: EvaluationContext + ?Sized>(&self, context: &C, fallback: T) -> T {
        let cached = self.current();
        // The common case, the stored state answering, without building a whole resolution.
        if cached.direct
            && let Some(compiled) = cached.entry.as_ref().and_then(|entry| entry.compiled.as_ref())
        {
            let evaluation = compiled.evaluate(context);
            cached.count(evaluation.slot);
            return T::from_json(evaluation.value).unwrap_or(fallback);
        }
        resolve_entry(cached.entry.as_deref(), cached.origin, &self.shared.overrides, &self.name, T::FLAG_TYPE, context, |resolution| {
            if let Some(slot) = resolution.slot {
                cached.count(slot);
            }
            value_of(resolution, fallback)
        })
    }

    /// Reports an error for `context`, counted for the variant it is served: see [`VexilClient::report_error`](crate::VexilClient::report_error).
    pub fn report_error<C: EvaluationContext + ?Sized>(&self, context: &C) -> bool {
        let cached = self.current();
        cached.entry.as_deref().is_some_and(|entry| report_error(entry, cached.origin, &self.shared.overrides, &self.name, context))
    }

    /// [`FlagHandle::value`] with where the value came from and why.
    pub fn details<C: EvaluationContext + ?Sized>(&self, context: &C, fallback: T) -> EvaluationDetails<T> {
        let cached = self.current();
        let cache = self.shared.read_cache();
        let environment = if cache.environment.is_empty() { &self.shared.configured_environment } else { &cache.environment };
        resolve_entry(cached.entry.as_deref(), cached.origin, &self.shared.overrides, &self.name, T::FLAG_TYPE, context, |resolution| {
            if let Some(slot) = resolution.slot {
                cached.count(slot);
            }
            details_of(resolution, &self.name, environment, fallback)
        })
    }
}
