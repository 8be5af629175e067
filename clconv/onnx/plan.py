"""Compile an ONNX graph into a plan: an ordered list of steps on fixed shapes.

1. Every node is checked against the op table first; all unsupported nodes are
   reported together.
2. Nodes are lowered in graph order. Values are host constants (numpy: initializers,
   Constant, Shape/Gather chains, anything computed from constants only) or run-time
   tensors with a known shape. Ops on constants are folded on the host.
3. Passes fold an inference batch norm into the preceding convolution's weights and
   fuse activations into the step before them.
4. Liveness: each tensor is released after its last use so the memory pool hands its
   buffer to a later step; element-wise steps write into an input that dies there.
Nothing runs on the device while planning.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..params import INT32_MAX
from .errors import PlanError, UnsupportedModelError
from .loader import ONNX_DOMAINS, Graph, Node, require_onnx
from .ops import HANDLERS
from .steps import (ActivationStep, AffineStep, BinaryStep, CallStep, ConvStep, Step,
                    whole_window_pool_call)

MIN_OPSET = 7  # older opsets use attribute forms (e.g. Reshape's shape) not handled


def max_opset() -> int:
    """The newest ai.onnx opset the installed onnx package defines; a newer one may have
    changed an op's meaning, so it is refused rather than guessed at."""
    return require_onnx().defs.onnx_opset_version()


@dataclass
class Tensor:
    """A run-time tensor: known shape, computed on the device."""

    shape: tuple
    dtype: np.dtype = np.dtype(np.float32)
    # Converts the device array to what the graph output should be (int64 indices).
    to_host: object = None


@dataclass
class Plan:
    inputs: dict[str, tuple]                 # run-time graph inputs and their shapes
    outputs: list[str]
    values: dict[str, object]                # name -> Tensor or numpy constant
    steps: list[Step]
    device_constants: list[str]              # constants steps read on the device
    releases: list[list[str]] = field(default_factory=list)
    peak_bytes: int = 0
    largest_pair_bytes: int = 0
    # tensors written straight into a concatenation's buffer (placement.py); those
    # buffers, taken from the run's pool while they live, are counted in arena_bytes
    # rather than the peak
    slots: dict = field(default_factory=dict)
    arena_bytes: int = 0
    # tensors written inside zero-bordered planes (borders.py): {name: border width},
    # in buffers of the compiled model's, counted in border_bytes
    borders: dict = field(default_factory=dict)
    border_bytes: int = 0

    def constant(self, name):
        value = self.values[name]
        return value if isinstance(value, np.ndarray) else None


class NodeContext:
    """What an op handler sees of the graph while its node is lowered."""

    def __init__(self, builder: "PlanBuilder", node: Node):
        self.builder, self.node = builder, node

    # -- inputs
    def has(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] != ""

    def value(self, i: int):
        return self.builder.values[self.node.inputs[i]] if self.has(i) else None

    def is_const(self, i: int) -> bool:
        return isinstance(self.value(i), np.ndarray)

    def all_const(self) -> bool:
        return all(self.is_const(i) for i in range(len(self.node.inputs)) if self.has(i))

    def shape(self, i: int) -> tuple:
        v = self.value(i)
        return tuple(v.shape)

    def const(self, i: int, what: str, default=None) -> np.ndarray | None:
        """Input i as a host constant; it must not depend on run-time data."""
        if not self.has(i):
            return default
        v = self.value(i)
        if not isinstance(v, np.ndarray):
            raise PlanError(f"{self.node}: input {i} ({what}, {self.node.inputs[i]!r}) must be "
                            "a constant (an initializer or computed from constants only); "
                            "here it depends on run-time data")
        return v

    def tensor(self, i: int, what: str) -> str:
        """Name of input i for a device step (a constant is uploaded once, as float32)."""
        if not self.has(i):
            raise PlanError(f"{self.node}: input {i} ({what}) is required")
        name = self.node.inputs[i]
        v = self.value(i)
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "fiub":
                raise PlanError(f"{self.node}: input {what} has dtype {v.dtype}")
            self.builder.device_constants.setdefault(name, None)
            if v.dtype != np.float32:
                self.builder.values[name] = v.astype(np.float32)
        elif v.dtype != np.float32:
            raise PlanError(f"{self.node}: input {what} ({name!r}) has dtype {v.dtype}; "
                            "device ops take float32")
        return name

    def add_constant(self, suffix: str, value) -> str:
        """A new float32 device constant computed at plan time, named after the node."""
        name = f"{self.node.name}::{suffix}"
        self.builder.values[name] = np.asarray(value, dtype=np.float32)
        self.builder.device_constants.setdefault(name, None)
        return name

    def attr(self, name, default=None):
        return self.node.attr(name, default)

    def fail(self, message: str):
        raise PlanError(f"{self.node}: {message}")

    # -- outputs
    def set_const(self, value, out: int = 0):
        if out < len(self.node.outputs) and self.node.outputs[out]:
            self.builder.values[self.node.outputs[out]] = np.asarray(value)

    def emit(self, step_cls, inputs, output_shapes, outputs=None, **fields) -> Step:
        for shape in output_shapes:
            if min(shape, default=1) < 1 or int(np.prod(shape, dtype=object)) > INT32_MAX:
                self.fail(f"output shape {tuple(shape)}: expected sizes >= 1 and at most "
                          f"{INT32_MAX} elements (the kernels' int32 index range)")
        outputs = list(outputs if outputs is not None else self.node.outputs[:len(output_shapes)])
        step = step_cls(nodes=[self.node.name], op=self.node.op_type, inputs=list(inputs),
                        outputs=outputs, output_shapes=[tuple(s) for s in output_shapes],
                        **fields)
        for name, shape in zip(outputs, step.output_shapes):
            self.builder.values[name] = Tensor(shape)
        self.builder.steps.append(step)
        return step


class PlanBuilder:
    def __init__(self, graph: Graph, input_shapes: dict[str, tuple],
                 host_inputs: dict[str, np.ndarray]):
        self.graph = graph
        self.values: dict[str, object] = dict(graph.initializers)
        self.values.update({k: np.asarray(v) for k, v in host_inputs.items()})
        self.inputs = {}
        for name, shape in input_shapes.items():
            self.values[name] = Tensor(tuple(shape))
            self.inputs[name] = tuple(shape)
        self.steps: list[Step] = []
        self.device_constants: dict[str, None] = {}  # ordered set

    def lower(self):
        for node in self.graph.nodes:
            for name in node.inputs:
                if name and name not in self.values:
                    raise PlanError(f"{node}: input {name!r} is neither a graph input, an "
                                    "initializer nor the output of an earlier node (is the "
                                    "file truncated or the graph unsorted?)")
            try:
                HANDLERS[node.op_type].lower(NodeContext(self, node))
            except (PlanError, UnsupportedModelError):
                raise
            except MemoryError as error:
                raise PlanError(f"{node}: needs more host memory than there is ({error})") \
                    from None
            except (ValueError, TypeError, LookupError, ArithmeticError, AttributeError) as error:
                # attributes or constants the handler could not use: say which node
                raise PlanError(f"{node}: {type(error).__name__}: {error}") from error
            for name in node.outputs:
                if name and name not in self.values:
                    raise PlanError(f"{node}: output {name!r} was not produced (internal)")


def check_supported(graph: Graph):
    """Raise UnsupportedModelError listing every node the op table cannot run."""
    bad = []
    newest = max_opset()
    for node in graph.nodes:
        spec = HANDLERS.get(node.op_type) if node.domain in ONNX_DOMAINS else None
        if spec is None or not MIN_OPSET <= node.opset <= newest:
            bad.append(node)
    problems = [f"input {i.name!r}: a {'non-tensor' if i.dtype is None else str(i.dtype)} "
                "graph input (clconv runs float32 tensors; integer inputs must feed only "
                "constant positions such as shapes, and be given when compiling)"
                for i in graph.inputs if i.dtype is None]
    if bad or problems:
        lines = [f"  {n.name!r}: {n.op_type} (domain {n.domain or 'ai.onnx'}, opset {n.opset})"
                 for n in bad]
        message = (f"{len(bad)} node(s) use ops clconv cannot run"
                   f"{'' if not bad else f' (supported: opsets {MIN_OPSET} to {newest})'}:\n"
                   + "\n".join(lines + ["  " + p for p in problems]))
        raise UnsupportedModelError(message, [(n.name, n.op_type, n.domain, n.opset)
                                              for n in bad])


def _consumers(steps) -> dict[str, list[int]]:
    users: dict[str, list[int]] = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            users.setdefault(name, []).append(i)
    return users


def _sole_consumer(steps, index, outputs, users):
    """The step that alone consumes steps[index]'s single output, if any."""
    step = steps[index]
    if len(step.outputs) != 1 or step.outputs[0] in outputs:
        return None
    readers = users.get(step.outputs[0], [])
    if len(readers) != 1 or steps[readers[0]].inputs.count(step.outputs[0]) != 1:
        return None
    return readers[0]


def merge_affines(steps, values, outputs, device_constants):
    """A per-channel affine map read only by another one (batch norm, then the Mul and
    Add some exporters write after it) becomes a single map: scale s1*s2, shift
    b1*s2 + b2, computed in float64."""
    users = _consumers(steps)
    removed = set()
    for i, step in enumerate(steps):
        if i in removed or not isinstance(step, AffineStep) or step.act.name != "none":
            continue
        j = _sole_consumer(steps, i, outputs, users)
        if j is None or not isinstance(steps[j], AffineStep) or steps[j].inputs[0] != step.outputs[0]:
            continue
        nxt = steps[j]
        s1, b1, s2, b2 = (values[n].astype(np.float64)
                          for n in step.inputs[1:3] + nxt.inputs[1:3])
        names = [f"{nxt.nodes[0]}::scale:merged", f"{nxt.nodes[0]}::shift:merged"]
        for name, value in zip(names, (s1 * s2, b1 * s2 + b2)):
            values[name] = value.astype(np.float32)
            device_constants.setdefault(name, None)
        nxt.inputs = [step.inputs[0]] + names
        nxt.nodes = step.nodes + nxt.nodes
        nxt.op = step.op + "+" + nxt.op
        removed.add(i)
    return [s for k, s in enumerate(steps) if k not in removed]


def fold_batch_norms(steps, values, outputs, device_constants):
    """Conv with constant weights followed only by a per-channel affine map: scale the
    weights and bias, drop the affine step."""
    users = _consumers(steps)
    removed = set()
    for i, step in enumerate(steps):
        if not isinstance(step, ConvStep) or step.act.name != "none":
            continue
        j = _sole_consumer(steps, i, outputs, users)
        if j is None or not isinstance(steps[j], AffineStep) or steps[j].act.name != "none":
            continue
        w = values[step.inputs[1]]
        b = values[step.inputs[2]] if len(step.inputs) > 2 else None
        if not isinstance(w, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
            continue
        affine = steps[j]
        scale, shift = (values[n].astype(np.float64) for n in affine.inputs[1:3])
        shape = (-1,) + (1,) * (w.ndim - 1)
        new_w = (w.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
        new_b = ((b.astype(np.float64) if b is not None else 0.0) * scale + shift)
        names = [f"{step.inputs[1]}::folded:{affine.nodes[0]}",
                 f"{affine.nodes[0]}::bias:folded"]
        for name, value in zip(names, (new_w, new_b.astype(np.float32))):
            values[name] = value
            device_constants.setdefault(name, None)
        step.inputs = [step.inputs[0]] + names
        step.outputs, step.output_shapes = affine.outputs, affine.output_shapes
        step.nodes += affine.nodes
        step.op += "+" + affine.op
        removed.add(j)
    return [s for k, s in enumerate(steps) if k not in removed]


def fuse_activations(steps, outputs):
    """An activation that alone reads a fusable step's output runs inside that step."""
    users = _consumers(steps)
    removed = set()
    for i, step in enumerate(steps):
        if i in removed or not step.fuses_activation or step.act.name != "none":
            continue
        j = _sole_consumer(steps, i, outputs, users)
        if j is None or not isinstance(steps[j], ActivationStep):
            continue
        act_step = steps[j]
        step.act = act_step.act
        step.outputs, step.output_shapes = act_step.outputs, act_step.output_shapes
        step.nodes += act_step.nodes
        step.op += "+" + act_step.op
        removed.add(j)
    return [s for k, s in enumerate(steps) if k not in removed]


def fuse_residual_adds(steps, values, outputs):
    """A 2-D convolution whose output only an Add of a same-shaped tensor reads (ResNet's
    skip connection, its activation already fused into the Add) adds that tensor in its
    own epilogue: conv + batch norm + add + relu become one step. The residual is the
    conv's last input and one it may overwrite, so memory planning writes the result
    into the residual's buffer when the residual dies there."""
    users = _consumers(steps)
    removed, moved = set(), {}
    for i, step in enumerate(steps):
        if i in removed or i in moved:
            continue
        if (not isinstance(step, ConvStep) or step.act.name != "none" or len(step.stride) != 2
                or step.input_view is not None or step.residual_input is not None):
            continue
        j = _sole_consumer(steps, i, outputs, users)
        if j is None or j in removed or j in moved:
            continue
        add = steps[j]
        if not isinstance(add, BinaryStep) or add.binary_op != "add" or add.broadcasts:
            continue
        (other,) = [name for name in add.inputs if name != step.outputs[0]] or [None]
        if other is None or tuple(values[other].shape) != step.output_shapes[0]:
            continue
        step.residual_input = len(step.inputs)
        step.inputs = step.inputs + [other]
        step.overwritable_inputs = (step.residual_input,)
        step.act = add.act
        step.outputs, step.output_shapes = add.outputs, add.output_shapes
        step.nodes += add.nodes
        step.op += "+" + add.op
        # the fused step runs where the Add ran: after the residual's producer too
        removed.add(i)
        moved[j] = step
    return [moved.get(k, s) for k, s in enumerate(steps) if k not in removed]


def fuse_max_pools(steps, outputs):
    """A 2-D convolution with constant weights whose output only a max pool reads (a
    network's stem: conv + batch norm + ReLU, then a 3x3 max pool of stride 2) runs the
    pool too: where its variant fuses it (ConstantWeightConv2d's max_pool), one launch
    writes only the pooled output, and the convolution's output never goes to memory.
    Runs after fuse_activations and fuse_residual_adds: the pool reads the activation's
    output, and a convolution that adds a residual keeps its own output."""
    users = _consumers(steps)
    removed = set()
    for i, conv in enumerate(steps):
        if (not isinstance(conv, ConvStep) or not conv.constant_weights
                or len(conv.stride) != 2 or conv.input_view or conv.pre_pad
                or conv.residual_input is not None or conv.input_affine is not None
                or conv.max_pool is not None):
            continue
        j = _sole_consumer(steps, i, outputs, users)
        pool = steps[j] if j is not None else None
        if not isinstance(pool, CallStep) or pool.max_pool is None or len(pool.outputs) != 1:
            continue
        conv.max_pool, conv.unpooled_shape = pool.max_pool, conv.output_shapes[0]
        conv.outputs, conv.output_shapes = pool.outputs, pool.output_shapes
        conv.nodes = conv.nodes + pool.nodes
        conv.op = conv.op + "+" + pool.op
        removed.add(j)
    return [s for k, s in enumerate(steps) if k not in removed]


def pool_before_pointwise_convs(steps, values, outputs):
    """A pointwise convolution read only by an average pool whose windows are whole
    (DenseNet's transitions: 1x1 conv, then a 2x2 pool of stride 2) runs after the pool
    instead: both are linear maps, the convolution of each pixel and the pool of each
    plane, so they commute (the bias too: every window's weights sum to 1), and the
    convolution then has a quarter of the pixels. The pool averages the convolution's
    input (its channels, not the output's). Runs before fuse_input_affines: a batch norm
    + ReLU before the convolution must now run before the pool, in a pass of its own."""
    users = _consumers(steps)
    swapped = set()
    for i, conv in enumerate(steps):
        if i in swapped or not isinstance(conv, ConvStep):
            continue
        weight = values.get(conv.inputs[1])
        if (not isinstance(weight, np.ndarray) or not conv.constant_weights
                or len(conv.stride) != 2 or weight.shape[2:] != (1, 1)
                or tuple(conv.stride) != (1, 1) or tuple(conv.padding) != (0, 0)
                or conv.pre_pad or conv.input_view or conv.act.name != "none"
                or conv.residual_input is not None or conv.input_affine is not None
                or conv.max_pool is not None):  # (a max pool does not commute)
            continue
        j = _sole_consumer(steps, i, outputs, users)
        pool = steps[j] if j is not None else None
        if (not isinstance(pool, CallStep) or pool.pool_window is None
                or pool.inputs[0] != conv.outputs[0]):
            continue
        n, c = values[conv.inputs[0]].shape[:2]
        pooled_shape = (n, c) + tuple(pool.output_shapes[0][2:])
        pooled = f"{conv.outputs[0]}::pooled"
        values[pooled] = Tensor(pooled_shape)
        steps[i] = CallStep(
            nodes=pool.nodes, op=pool.op, inputs=[conv.inputs[0]], outputs=[pooled],
            output_shapes=[pooled_shape], writes_out=True, pool_window=pool.pool_window,
            description=pool.description + " (moved before the 1x1 convolution it followed)",
            call=whole_window_pool_call(pool.pool_window, pooled_shape))
        conv.inputs = [pooled] + conv.inputs[1:]
        conv.outputs, conv.output_shapes = pool.outputs, pool.output_shapes
        conv.nodes = conv.nodes + pool.nodes
        conv.op = conv.op + "+" + pool.op
        steps[j] = conv  # where the pool ran: its readers come after
        swapped.add(j)
    return steps


def fuse_input_affines(steps, values, outputs):
    """A per-channel affine map (with a ReLU or no activation) read only by a pointwise
    convolution with constant weights is applied as that convolution loads its input:
    DenseNet's batch norm + ReLU before each layer's 1x1 convolution, which reads the
    whole concatenation so far, then costs no pass over it (ConstantWeightConv2d's
    input_affine); read only by an average pool of whole windows, likewise as the pool
    loads it. Runs after fuse_residual_adds: scale and shift become the last two
    inputs."""
    users = _consumers(steps)
    removed = set()
    for i, step in enumerate(steps):
        if not isinstance(step, AffineStep) or step.act.name not in ("none", "relu"):
            continue
        j = _sole_consumer(steps, i, outputs, users)
        if j is None:
            continue
        conv = steps[j]
        if (isinstance(conv, CallStep) and conv.pool_window is not None
                and conv.inputs == [step.outputs[0]]):
            _pool_with_input_affine(step, conv)  # an average pool reads it: in its loads
            removed.add(i)
            continue
        weight = values.get(conv.inputs[1]) if isinstance(conv, ConvStep) else None
        if (not isinstance(weight, np.ndarray) or not conv.constant_weights
                or conv.inputs[0] != step.outputs[0] or conv.input_affine is not None
                or conv.max_pool is not None or conv.input_view or conv.pre_pad
                or weight.shape[2:] != (1, 1) or tuple(conv.stride) != (1, 1)
                or tuple(conv.padding) != (0, 0) or conv.groups != 1):
            continue
        conv.input_affine = step.act
        conv.inputs = [step.inputs[0]] + conv.inputs[1:] + list(step.inputs[1:3])
        conv.nodes = step.nodes + conv.nodes
        conv.op = step.op + "+" + conv.op
        removed.add(i)
    return [s for k, s in enumerate(steps) if k not in removed]


def _pool_with_input_affine(affine, pool):
    """An average pool of whole windows (pool_window) that applies the per-channel affine
    map (and ReLU) as it loads its input (pool.avg_pool2d_windows' input_affine):
    DenseNet's batch norm + ReLU before a transition, once the pool runs first."""
    pool.call = whole_window_pool_call(pool.pool_window, pool.output_shapes[0], affine.act)
    pool.inputs = [affine.inputs[0]] + list(affine.inputs[1:3])
    pool.nodes = affine.nodes + pool.nodes
    pool.op = affine.op + "+" + pool.op
    pool.description = ("per-channel affine" + (" + relu" if affine.act.name == "relu" else "")
                        + " on its input, then " + pool.description)


def plan_memory(plan: Plan):
    """Release lists, in-place reuse and the planned peak of activation memory."""
    steps, outputs = plan.steps, set(plan.outputs)
    # never overwritten in place nor counted: inputs, weights, and tensors that live in
    # a concatenation's buffer (other parts of it are still to be read)
    pinned = (set(plan.inputs) | set(plan.device_constants) | set(plan.slots)
              | set(plan.borders))
    root = {name: name for name in pinned}
    last_use: dict[str, int] = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            last_use[name] = i
        for name in step.outputs:
            root[name] = root.get(step.inputs[0], step.inputs[0]) if step.is_view else name
    root_last: dict[str, int] = {}
    for name, i in last_use.items():
        r = root.get(name, name)
        root_last[r] = max(root_last.get(r, -1), i)
    for name in outputs:
        root_last[root.get(name, name)] = len(steps)  # outputs live to the end
    plan.releases = [[] for _ in steps]
    for name, i in last_use.items():
        if name not in outputs and name not in plan.device_constants:
            plan.releases[i].append(name)

    def nbytes(name):
        value = plan.values.get(name)
        return int(np.prod(value.shape, dtype=np.int64)) * 4 if isinstance(value, Tensor) else 0

    live: dict[str, int] = {}
    peak = pair = 0
    for i, step in enumerate(steps):
        step.reuse_input = None
        for k in step.overwritable_inputs:
            name = step.inputs[k]
            r = root.get(name, name)
            # another input in the same buffer would be read while it is overwritten
            others = {root.get(n, n) for m, n in enumerate(step.inputs) if m != k}
            if (r not in pinned and root_last.get(r) == i and len(step.outputs) == 1
                    and r not in others and step.outputs[0] not in plan.slots
                    and step.outputs[0] not in plan.borders
                    and tuple(plan.values[name].shape) == step.output_shapes[0]):
                step.reuse_input = k
                root[step.outputs[0]] = r
                root_last[r] = root_last.get(step.outputs[0], root_last[r])
                break
        for name in step.outputs:
            r = root[name]
            if r == name and r not in pinned:
                live[r] = nbytes(name)
                root_last.setdefault(r, i)
        hidden = step.hidden_bytes()
        peak = max(peak, sum(live.values()) + hidden)
        io = {root.get(n, n) for n in step.inputs + step.outputs} - pinned
        pair = max(pair, sum(live.get(r, 0) for r in io) + hidden)
        for r in [r for r in live if root_last.get(r, i) <= i]:
            del live[r]
    plan.peak_bytes, plan.largest_pair_bytes = peak, pair


def build_plan(graph: Graph, input_shapes: dict[str, tuple],
               host_inputs: dict[str, np.ndarray] | None = None) -> Plan:
    check_supported(graph)
    builder = PlanBuilder(graph, input_shapes, host_inputs or {})
    builder.lower()
    for name in graph.outputs:
        if name not in builder.values:
            raise PlanError(f"graph output {name!r} is not produced by any node")
    steps = merge_affines(builder.steps, builder.values, set(graph.outputs),
                          builder.device_constants)
    steps = fold_batch_norms(steps, builder.values, set(graph.outputs),
                             builder.device_constants)
    steps = fuse_activations(steps, set(graph.outputs))
    steps = fuse_residual_adds(steps, builder.values, set(graph.outputs))
    steps = fuse_max_pools(steps, set(graph.outputs))
    steps = pool_before_pointwise_convs(steps, builder.values, set(graph.outputs))
    steps = fuse_input_affines(steps, builder.values, set(graph.outputs))
    used = {name for step in steps for name in step.inputs}
    device_constants = [n for n in builder.device_constants if n in used]
    plan = Plan(dict(builder.inputs), list(graph.outputs), builder.values, steps,
                device_constants)
    plan_memory(plan)
    return plan
