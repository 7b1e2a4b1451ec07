"""Block swap: keep the big weights of k DiT blocks on the CPU and stream them in just before use.

    swap = enable_block_swap(model, num_blocks, device)   # the first `num_blocks` blocks are swapped
    model(...)                                            # weights arrive one block ahead of compute
    disable_block_swap(model)                             # everything back on `device`, hooks removed

What moves: the tensors of the Linear layers (nn.Linear and fp8 FP8Linear) of a swapped block,
which are >99% of its bytes. Norm weights, modulation tables and sync layers stay on the device:
they are tiny, and GridDiT reads some of them directly (not through a module call), which a hook
could not see coming.

How: every module of a swapped block gets a forward pre-hook. The first call into block i makes
sure block i is resident (waiting for its prefetch), releases the swapped blocks other than i and
i+1, and starts copying block i+1 on a side CUDA stream from pinned memory, so the copy overlaps
block i's compute. The model's own pre-hook prefetches the first swapped block while the
embeddings run; its forward hook drops all swapped weights at the end of a forward, so at most two
swapped blocks are on the GPU at any time. The GPU copies are dropped, never written back: the
pinned CPU copy is the master (inference only). Any mode works, including hard / soft, which call
each block twice: the second call finds the block resident.

On CPU (device="cpu") the same hooks run and "loading" makes a fresh copy, so tests can check the
mechanism and that outputs are bit-identical.

Order: quantise to fp8 (model/fp8.py) before enabling block swap; and do not call `model.to(...)`
while it is enabled (that would move the CPU masters too): disable, move, enable again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from .fp8 import FP8Linear

_ATTR = "_camgrid_block_swap"


@dataclass
class SwapStats:
    loads: int = 0             # block loads started (prefetch or on demand)
    waits_on_demand: int = 0   # times a block was needed before its prefetch had been started
    releases: int = 0
    max_resident: int = 0      # most swapped blocks resident at once
    hook_calls: int = 0
    loaded_blocks: list = field(default_factory=list)  # order in which blocks were loaded


class BlockSwap:
    def __init__(self, model: nn.Module, num_blocks: int, device, pin_memory: Optional[bool] = None):
        blocks = getattr(model, "blocks", None)
        if blocks is None:
            raise TypeError("enable_block_swap needs a GridDiT (a model with .blocks)")
        if not 0 <= num_blocks <= len(blocks):
            raise ValueError(f"block_swap: num_blocks must be between 0 and {len(blocks)} (the model's block "
                             f"count), got {num_blocks}")
        self.model, self.device = model, torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.pin = self.cuda if pin_memory is None else bool(pin_memory and torch.cuda.is_available())
        self.swapped = list(range(num_blocks))
        self.stats = SwapStats()
        self._entries: dict[int, list] = {}     # block -> [(module, kind, name, cpu_tensor)]
        self._resident: dict[int, list] = {}    # block -> device tensors (kept to record streams)
        self._events: dict[int, object] = {}
        self._hooks: list = []
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None

        # the swapped tensors get a CPU master (pinned on CUDA); everything else lives on the device
        swapped_slots = set()
        for i in self.swapped:
            entries = []
            for mod in blocks[i].modules():
                if isinstance(mod, (nn.Linear, FP8Linear)):
                    for kind, store in (("param", mod._parameters), ("buffer", mod._buffers)):
                        for name, t in store.items():
                            if t is None:
                                continue
                            cpu = t.detach().to("cpu", copy=t.device.type != "cpu")
                            entries.append((mod, kind, name, cpu.pin_memory() if self.pin else cpu))
                            swapped_slots.add((id(mod), name))
            self._entries[i] = entries
            for mod, kind, name, cpu in entries:  # frees any device copies
                self._point(mod, kind, name, cpu)
        for mod in model.modules():
            for kind, store in (("param", mod._parameters), ("buffer", mod._buffers)):
                for name, t in store.items():
                    if t is not None and (id(mod), name) not in swapped_slots and t.device != self.device:
                        self._point(mod, kind, name, t.detach().to(self.device))

        for i in self.swapped:
            for mod in blocks[i].modules():
                self._hooks.append(mod.register_forward_pre_hook(self._make_hook(i)))
        self._hooks.append(model.register_forward_pre_hook(lambda m, a: self._prefetch_first()))
        self._hooks.append(model.register_forward_hook(lambda m, a, o: self.release_all()))

    # --- plumbing ----------------------------------------------------------------------------
    @staticmethod
    def _point(mod, kind, name, tensor):
        if kind == "param":
            mod._parameters[name].data = tensor
        else:
            mod._buffers[name] = tensor

    def _make_hook(self, i):
        def hook(module, args):
            self.stats.hook_calls += 1
            self.use(i)
        return hook

    # --- the schedule --------------------------------------------------------------------------
    def _start_load(self, i):
        if i in self._resident or i not in self._entries:
            return
        self.stats.loads += 1
        self.stats.loaded_blocks.append(i)
        if self.cuda:
            # no wait on the compute stream: the source is pinned host memory that never changes
            with torch.cuda.stream(self._stream):
                copies = [cpu.to(self.device, non_blocking=True) for _, _, _, cpu in self._entries[i]]
                ev = torch.cuda.Event()
                ev.record(self._stream)
            self._events[i] = ev
        else:
            copies = [cpu.clone() for _, _, _, cpu in self._entries[i]]
        for (mod, kind, name, _), t in zip(self._entries[i], copies):
            self._point(mod, kind, name, t)
        self._resident[i] = copies
        self.stats.max_resident = max(self.stats.max_resident, len(self._resident))

    def _release(self, i):
        copies = self._resident.pop(i, None)
        if copies is None:
            return
        self._events.pop(i, None)
        for mod, kind, name, cpu in self._entries[i]:
            self._point(mod, kind, name, cpu)
        self.stats.releases += 1

    def _prefetch_first(self):
        if self.swapped:
            self._start_load(self.swapped[0])

    def use(self, i):
        """Block i is about to run: make it resident, keep at most i and i+1, prefetch i+1."""
        if i in self._resident and i not in self._events and (i + 1 in self._resident or i + 1 not in self._entries):
            return  # fast path: nothing to do (already waited, next already prefetched)
        for j in [j for j in self._resident if j not in (i, i + 1)]:
            self._release(j)
        if i not in self._resident:
            self.stats.waits_on_demand += 1
            self._start_load(i)
        ev = self._events.pop(i, None)
        if ev is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(ev)
            for t in self._resident[i]:
                t.record_stream(compute)  # the allocator must not reuse them before compute is done
        self._start_load(i + 1)

    def release_all(self):
        for j in list(self._resident):
            self._release(j)

    def remove(self, device=None):
        """Remove the hooks and put every swapped tensor on `device` (default: the swap device)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self.release_all()
        device = torch.device(device) if device is not None else self.device
        for i in self.swapped:
            for mod, kind, name, cpu in self._entries[i]:
                self._point(mod, kind, name, cpu.to(device, copy=True))
        self._entries.clear()


def enable_block_swap(model: nn.Module, num_blocks: int, device="cuda", pin_memory: Optional[bool] = None):
    """Keep the Linear weights of the first `num_blocks` blocks on the CPU, streamed in per block.

    Everything else is moved to `device`. Returns the BlockSwap handle (also at model._camgrid_block_swap);
    num_blocks 0 only moves the model. Re-enabling replaces a previous swap."""
    disable_block_swap(model)
    if num_blocks == 0:
        model.to(device)
        return None
    swap = BlockSwap(model, int(num_blocks), device, pin_memory)
    setattr(model, _ATTR, swap)
    return swap


def disable_block_swap(model: nn.Module, device=None) -> bool:
    """Undo enable_block_swap: all weights on `device` (default: the swap device). True if one was active."""
    swap = getattr(model, _ATTR, None)
    if swap is None:
        return False
    swap.remove(device)
    if device is not None:
        model.to(device)
    delattr(model, _ATTR)
    return True


def block_swap_of(model: nn.Module) -> Optional[BlockSwap]:
    return getattr(model, _ATTR, None)
