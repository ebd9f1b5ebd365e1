"""Hash tables from non-negative int64 keys to int64 values, as two arrays, for compiled code.

Open addressing with linear probing in a power-of-two table (keys -1 mark empty slots), keys
spread by Fibonacci hashing. The beam search keeps its prefix trie's child links here and the
word n-gram model its n-grams: a probe is a multiply and an array read, where numba's typed
dict costs a function call and, from Python, an unboxing per call. Nothing is ever deleted;
a table that fills is rebuilt bigger (:func:`with_room`). Keep it at most half full.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = -1


@njit(cache=True)
def new(capacity):
    """(keys, values) of an empty table with at least ``capacity`` slots."""
    size = 1
    while size < capacity:
        size *= 2
    return np.full(size, EMPTY, dtype=np.int64), np.zeros(size, dtype=np.int64)


@njit(cache=True, inline="always")
def _slot(keys, key):
    """The slot holding ``key``, or the empty slot where it belongs."""
    mask = keys.shape[0] - 1
    h = ((key * 0x9E3779B97F4A7C15) & 0x7FFFFFFFFFFFFFFF) & mask
    while keys[h] != EMPTY and keys[h] != key:
        h = (h + 1) & mask
    return h


@njit(cache=True, inline="always")
def find(keys, values, key):
    """The value of ``key``, or -1."""
    h = _slot(keys, key)
    return values[h] if keys[h] == key else -1


@njit(cache=True, inline="always")
def insert(keys, values, key, value):
    h = _slot(keys, key)
    keys[h] = key
    values[h] = value


@njit(cache=True)
def from_pairs(pair_keys, pair_values):
    """A table of the given pairs, at most half full."""
    size = 1
    while size < 2 * pair_keys.shape[0] + 2:
        size *= 2
    keys = np.full(size, EMPTY, dtype=np.int64)
    values = np.zeros(size, dtype=np.int64)
    for i in range(pair_keys.shape[0]):
        insert(keys, values, pair_keys[i], pair_values[i])
    return keys, values


@njit(cache=True)
def with_room(keys, values, entries):
    """The table itself if it holds ``entries`` keys at most half full, else a copy twice as big
    (or more) with the same pairs."""
    size = keys.shape[0]
    if size >= 2 * entries:
        return keys, values
    while size < 2 * entries:
        size *= 2
    new_keys = np.full(size, EMPTY, dtype=np.int64)
    new_values = np.zeros(size, dtype=np.int64)
    for h in range(keys.shape[0]):
        if keys[h] != EMPTY:
            insert(new_keys, new_values, keys[h], values[h])
    return new_keys, new_values
