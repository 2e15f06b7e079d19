"""kv_cache.py: the HF engine's KV cache, one layer at a time: room to grow, rows that
leave by swap-remove and rows that join in place (engines.Decoder's continuous batch).

Not a part of the paper: machinery that makes the CPU runs fast (App. H's concern,
on our hardware). transformers' DynamicLayer concatenates every cached key and
value with each new token's, a copy of the whole cache per token and layer (half
of a classroom decode step's operator time at 64 rows, in our profile). A
continuous batch also changes its rows all the time: rows finish and leave, new
rows join. This file keeps each layer's keys and values in buffers with free
columns to the right (the next tokens) and free rows past the live ones (rows
that left, rows to come), so a token, a finished row and a joining row each
cost a copy of what changes only.

Paper map
  App. H    the cost of sampling, the bulk of a training step        (the decoder's cache)
  (ours)    a KV cache with room to grow, no copy per token            SlackLayer.update()
  (ours)    a finished row's slot taken by the last row                swap_remove(), SlackLayer.keep_rows()
  (ours)    joining rows written into free rows in place               SlackLayer.has_room(), append_rows()

Symbols (B rows in the buffers, n of them live, T columns, d head width)
  key_buffer, value_buffer -> (B, heads, T + room, d); the live cache is rows [0, n),
                              columns [start, end)
  keys, values             -> (n, heads, end - start, d) views of the buffers, what attention reads
  mask                     -> (B, T) 1 on a row's real columns, 0 on its left padding (the decoder's)

Design
  * Rows are right-aligned at `end`: a row shorter than the window has zeros in
    front (left padding, masked by the decoder). The values attention reads are
    those of transformers' DynamicLayer, bit for bit (tests/test_thought_mdp.py).
  * Rows past n hold stale values; columns that come into view again (a joining
    prompt longer than the window) are zeroed first, so a masked column is never
    a NaN that a zero attention weight would turn into a NaN output.
  * Swap-remove changes the rows' order; each row samples from its own random
    key, so its tokens do not depend on its place (up to float rounding in a
    batched product, which could flip a near-tie).

Run it
  python thought_mdp.py --benchmark     # the engine's decoder runs on this cache
"""

import torch
from transformers.cache_utils import DynamicLayer


def swap_remove(n, leaving):
    """The rows that stay when the rows `leaving` of n go, in their new order: each
    leaving row's slot is taken by the last staying row, so only those rows move
    (SlackLayer.keep_rows) instead of every row after the first one that left."""
    order = list(range(n))
    for j in sorted(leaving, reverse=True):
        order[j] = order[-1]
        order.pop()
    return order


class SlackLayer(DynamicLayer):
    """One layer of the decoder's KV cache, with room to grow: the n live rows' keys and
    values sit at rows [0, n) and columns [start, end) of buffers (B, heads, end + room,
    d) (rows past n were freed by keep_rows), and a decode step writes its token into
    the next free column. transformers' DynamicLayer concatenates the
    whole cache with the new token instead, a copy of every cached key and value per
    token and layer (half of a classroom decode step's operator time at 64 rows).
    Same values, same attention inputs (keys and values are views of the buffers):
    the logits are bit for bit those of DynamicLayer (tests/test_thought_mdp.py)."""

    def __init__(self, keys, values, room=64):
        self._setup(keys, room)
        self._fill([(keys, values)])

    @classmethod
    def stacked(cls, blocks, room=64, rows=0):
        """One layer from blocks of rows [(keys, values) (b, heads, t, d)], stacked in
        order and right-aligned, zeros in front of the shorter ones (left padding);
        buffers with at least `rows` rows, the ones past the blocks free for append_rows."""
        layer = cls.__new__(cls)
        layer._setup(blocks[0][0], room)
        layer._fill(blocks, rows)
        return layer

    def _setup(self, keys, room):
        DynamicLayer.__init__(self)
        self.room, self.dtype, self.device, self.is_initialized = room, keys.dtype, keys.device, True

    def _fill(self, blocks, rows=0):
        B = sum(keys.shape[0] for keys, _ in blocks)
        _, heads, _, d = blocks[0][0].shape
        T = max(keys.shape[2] for keys, _ in blocks)
        shape = (max(B, rows), heads, T + self.room, d)
        self.key_buffer, self.value_buffer = blocks[0][0].new_empty(shape), blocks[0][1].new_empty(shape)
        self.n, self.start, self.end = 0, 0, T
        self._place(blocks)
        self._view()

    def _place(self, blocks):
        """Write blocks of rows [(keys, values) (b or 1, heads, t, d)] at rows n, n + 1, ...,
        right-aligned at `end`, zeros from `start` to each block's first column."""
        for keys, values in blocks:
            rows, t = slice(self.n, self.n + keys.shape[0]), keys.shape[2]
            pad = slice(self.start, self.end - t)
            self.key_buffer[rows, :, pad] = 0
            self.value_buffer[rows, :, pad] = 0
            self.key_buffer[rows, :, self.end - t : self.end] = keys
            self.value_buffer[rows, :, self.end - t : self.end] = values
            self.n += keys.shape[0]

    def has_room(self, rows, length):
        """Whether `rows` more rows with prompts of up to `length` tokens fit in place."""
        return self.n + rows <= self.key_buffer.shape[0] and length <= self.end

    def append_rows(self, groups):
        """Rows joining the batch in place: groups [(keys, values) (1, heads, t, d), count]
        of `count` rows each with the same prompt (has_room must hold). If a prompt is
        longer than the cache is wide, the window widens to the left over every row,
        and the columns that come into view are zeroed (they are padding there)."""
        start = min(self.start, self.end - max(keys.shape[2] for keys, _, _ in groups))
        if start < self.start:
            self.key_buffer[: self.n, :, start : self.start] = 0
            self.value_buffer[: self.n, :, start : self.start] = 0
            self.start = start
        self._place(
            [(keys.expand(c, -1, -1, -1), values.expand(c, -1, -1, -1)) for keys, values, c in groups]
        )
        self._view()

    def _view(self):
        self.keys = self.key_buffer[: self.n, :, self.start : self.end]  # (B, heads, T, d)
        self.values = self.value_buffer[: self.n, :, self.start : self.end]

    def update(self, key_states, value_states, *args, **kwargs):
        """Append the new tokens' keys and values (B, heads, n, d); the cache as attention reads it."""
        n = key_states.shape[-2]
        if self.end + n > self.key_buffer.shape[-2]:  # full: move to buffers with fresh room
            self._fill([(self.keys, self.values)], rows=self.key_buffer.shape[0])
        self.key_buffer[: self.n, :, self.end : self.end + n] = key_states
        self.value_buffer[: self.n, :, self.end : self.end + n] = value_states
        self.end += n
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices):
        """Keep only the rows `indices`, in that order (transformers' cache interface)."""
        self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
        self.n = len(indices)
        self._view()

    def keep_rows(self, order):
        """Keep the rows `order` (a list), where every kept row either stays in its own
        place (order[i] == i) or moves from past the new end (order[i] >= len(order)):
        the decoder's swap-remove. Only the moved rows are copied; the buffers keep
        their size (the rows past the new end are free)."""
        cols = slice(self.start, self.end)  # only the used columns
        for i, o in enumerate(order):
            if o != i:  # usually one row or none: a copy each is fewer calls than gathering
                self.key_buffer[i, :, cols] = self.key_buffer[o, :, cols]
                self.value_buffer[i, :, cols] = self.value_buffer[o, :, cols]
        self.n = len(order)
        self._view()

    def drop_front(self, n):
        """Forget the first n columns (padding in every row)."""
        self.start += n
        self._view()


def pad_left(mask, n):
    """A (B, T) attention mask with n zero columns in front, so rows of different widths
    line up on the right (SlackLayer.stacked pads the cache's blocks the same way)."""
    return torch.nn.functional.pad(mask, (n, 0))
