"""A compiled model: its plan, its constants on the device, and run()."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pyopencl as cl

from ..arrays import allocate, empty, on_device
from ..build import enqueue_copy, sub_buffer_alignment
from ..runtime import current
from ..validation import check_allocation
from .errors import InputError, PlanError
from .borders import BorderArena, place_borders
from .placement import ConcatArena, clear_placement, place_concat_inputs
from .profiling import time_launches
from .plan import Plan, Tensor, plan_memory
from .replay import ENV_REPLAY, record, same_bits, verification_feeds


class CompiledModel:
    """Runs a plan on clconv's current device. Create with clconv.onnx.load()."""

    def __init__(self, plan: Plan, source: str = "model"):
        self.plan, self.source = plan, source
        self.runtime = current()
        try:
            # every buffer the plan will ask for must fit the device: say so at load time
            for name, value in plan.values.items():
                if isinstance(value, Tensor):
                    check_allocation(self.runtime.profile, f"tensor {name!r}", value.shape,
                                     np.dtype(value.dtype).itemsize)
            # Weights go to the device once; run() only moves inputs and outputs.
            self._constants = {name: on_device(self.runtime, plan.values[name], np.float32,
                                               name=f"constant {name!r}")
                               for name in plan.device_constants}
        except ValueError as error:
            raise PlanError(f"{source}: {error}") from None
        self._arena = self._place_tensors()
        # runs share the concatenation buffers and the launch list, so one at a time
        self._lock = threading.Lock()
        self._runs = 0
        # None: not recorded yet; False: recorded, but its replay differed (see run)
        self._launches = None
        self._replay_note = "runs step by step until its second run is recorded"
        if os.environ.get(ENV_REPLAY, "1") == "0":
            self._launches = False
            self._replay_note = f"runs step by step ({ENV_REPLAY}=0)"

    def _place_tensors(self) -> dict:
        """{tensor: the model's own array it is written into}: producers write into their
        Concat's output (placement.py), and inside zero borders for the convolutions
        that read them (borders.py). A device that cannot make the sub-buffers gets the
        copying Concat."""
        plan, rt = self.plan, self.runtime
        plan.slots = place_concat_inputs(plan, sub_buffer_alignment(rt.context.devices[0]))
        arrays, self._concatenations = {}, None
        if plan.slots:
            try:
                self._concatenations = ConcatArena(rt, plan, plan.slots)
                plan.arena_bytes = self._concatenations.nbytes
            except cl.Error:  # e.g. no sub-buffers: copy as before
                clear_placement(plan)
        plan.borders = place_borders(plan, rt.profile)
        if plan.borders:
            borders = BorderArena(rt, plan, plan.borders)
            arrays.update(borders.arrays)
            plan.border_bytes = borders.nbytes
        plan_memory(plan)
        return arrays

    @property
    def input_names(self) -> list[str]:
        return list(self.plan.inputs)

    @property
    def input_shapes(self) -> dict[str, tuple]:
        return dict(self.plan.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.plan.outputs)

    def _check_inputs(self, inputs) -> dict:
        names = self.input_names
        if not isinstance(inputs, dict):
            inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if len(inputs) != len(names):
                raise InputError(f"{self.source}: expected {len(names)} input(s) {names}, got "
                                 f"{len(inputs)}")
            inputs = dict(zip(names, inputs))
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise InputError(f"{self.source}: inputs must be exactly {names}; missing {missing}, "
                             f"unknown {unknown}")
        for name, value in inputs.items():
            expected = self.plan.inputs[name]
            if not hasattr(value, "shape") or not hasattr(value, "dtype"):
                raise InputError(f"input {name!r}: expected an array of shape {expected}, got "
                                 f"{type(value).__name__}")
            if tuple(value.shape) != expected:
                raise InputError(f"input {name!r}: expected shape {expected}, got "
                                 f"{tuple(value.shape)} (the plan is compiled for fixed shapes; "
                                 "load the model again with input_shapes= for other shapes)")
            if value.dtype != np.float32:
                raise InputError(f"input {name!r}: expected dtype float32, got {value.dtype}")
        return inputs

    def run(self, inputs, as_numpy: bool = True, on_step=None) -> list:
        """Outputs in graph order, for `inputs` (a dict by name, a list, or one array).

        Inputs are checked before anything is enqueued. With as_numpy=False float
        outputs stay on the device (pyopencl arrays of their own). on_step(step,
        seconds), for profiling, runs step by step and drains the queue after every
        step. From the second run on, a run replays a recorded launch list (replay.py)
        where that proved to give the step-by-step results."""
        feeds = self._check_inputs(inputs)
        outputs = self.plan.outputs
        with self._lock:
            if on_step is None and self._launches:
                arrays = self._launches.run(feeds)
                return [self._output(name, arrays, as_numpy, detach=True) for name in outputs]
            if on_step is None and self._launches is None and self._runs > 0:
                return self._record(feeds, as_numpy)
            _, env = self._run_steps(feeds, on_step)
            self._runs += 1
            return [self._output(name, env, as_numpy) for name in outputs]

    def launch_times(self, inputs, runs: int = 5):
        """The device time of every launch of a replayed run on `inputs`, best of `runs`
        (onnx/profiling.py: a profiling queue, nothing waiting between launches). The
        model must replay a launch list: run it twice first (see replay_note)."""
        feeds = self._check_inputs(inputs)
        with self._lock:
            if not self._launches:
                raise RuntimeError(f"{self.source}: no launch list to time: it "
                                   f"{self._replay_note}")
            return time_launches(self._launches, feeds, runs)

    @property
    def replay_note(self) -> str:
        """Whether runs replay a launch list, and if not, why."""
        return self._replay_note

    def _run_steps(self, feeds, on_step=None):
        """Run the plan step by step: (the input arrays, {output name: array})."""
        rt, arena, concatenations = self.runtime, dict(self._arena), self._concatenations
        inputs = {name: on_device(rt, value) for name, value in feeds.items()}
        env = dict(self._constants)
        env.update(inputs)

        def block(nbytes):  # from this thread's pool: the recorded run's while recording
            return allocate(rt, (nbytes // 4,), name="concatenation").base_data

        for index, (step, releases) in enumerate(zip(self.plan.steps, self.plan.releases)):
            if concatenations is not None:
                arena.update(concatenations.open(index, block))
            args = [env[name] for name in step.inputs]
            out = arena.get(step.outputs[0])  # its place (a concatenation, a border)
            if out is None and step.reuse_input is not None:
                out = args[step.reuse_input]
            started = time.perf_counter() if on_step else 0.0
            env.update(zip(step.outputs, step.run(args, out)))
            if on_step:
                rt.queue.finish()
                on_step(step, time.perf_counter() - started)
            del args, out
            for name in releases:
                env.pop(name, None)
            if concatenations is not None:
                for name in concatenations.close(index):
                    arena.pop(name, None)
        return inputs, {name: env[name] for name in self.plan.outputs if name in env}

    def _record(self, feeds, as_numpy):
        """This run, recorded into a launch list; the list is kept if a replay on a second
        input gives what a step-by-step run gives, bit for bit."""
        outputs = self.plan.outputs
        launches, env = record(self._run_steps, self.runtime, feeds)
        result = [self._output(name, env, as_numpy, detach=True) for name in outputs]
        self._runs += 1
        check = verification_feeds(self.input_shapes)
        _, steps_env = self._run_steps(check)
        want = [self._output(name, steps_env, True) for name in outputs]
        replayed = launches.run(check)
        got = [self._output(name, replayed, True) for name in outputs]
        if all(same_bits(a, b) for a, b in zip(want, got)):
            self._launches = launches
            self._replay_note = (f"replays {len(launches)} recorded launches and copies per "
                                 "run")
            self.runtime.allocator.free_held()  # the step-by-step runs' buffers
        else:
            self._launches = False
            self._replay_note = ("runs step by step: a replay of the recorded run differed "
                                 "from a step-by-step run on a second input")
        return result

    def _output(self, name, env, as_numpy, detach=False):
        """Output `name` as the caller gets it; detach: a device array is copied into one
        of the caller's own (env's is the launch list's, overwritten by the next run)."""
        value = self.plan.values[name]
        if isinstance(value, np.ndarray):
            return value
        array = env[name]
        if isinstance(value, Tensor) and value.to_host is not None:
            return value.to_host(array)
        if as_numpy:
            return array.get()
        if not detach:
            return array
        own = empty(self.runtime, array.shape, array.dtype)
        enqueue_copy(self.runtime, own.data, array.base_data, byte_count=array.nbytes,
                     src_offset=array.offset)
        return own

    __call__ = run
