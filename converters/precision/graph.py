"""Small ONNX graph helpers shared by the precision passes."""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Any


def toposort(graph: Any) -> None:
    """Reorder graph.node topologically in place (stable: keeps the original order where it can).

    Some rewriters (ONNX Runtime's float16 converter) append the Casts they insert at the end,
    which onnx.checker and TensorRT's parser reject.
    """
    nodes = list(graph.node)
    produced = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    deps: list[set[int]] = []
    users: dict[int, list[int]] = defaultdict(list)
    for k, n in enumerate(nodes):
        d = {produced[i] for i in _inputs(n) if i in produced and produced[i] != k}
        deps.append(d)
        for j in d:
            users[j].append(k)
    ready = deque(k for k, d in enumerate(deps) if not d)
    order: list[int] = []
    pending = [len(d) for d in deps]
    while ready:
        k = ready.popleft()
        order.append(k)
        for u in sorted(users[k]):
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        raise ValueError("the graph has a cycle")
    del graph.node[:]
    graph.node.extend(nodes[k] for k in order)


def _inputs(node: Any) -> list[str]:
    """A node's inputs, including outer-scope names its subgraphs (If/Loop bodies) read."""
    names = list(node.input)
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            inner = {o for n in sub.node for o in n.output} | {i.name for i in sub.initializer}
            names += [i for n in sub.node for i in _inputs(n) if i not in inner]
    return names
