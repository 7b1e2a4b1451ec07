"""Convert a ComfyUI workflow saved from the editor (UI format) into the API format `/prompt` takes.

UI format: `nodes` with positional `widgets_values` and socket `inputs` that point at `links`.
API format: `{node_id: {"class_type", "inputs": {name: value | [source_id, slot]}}}`.

What the browser does when it queues a workflow, and so what this does:
- widget values are matched to input names in the order the node's definition (`/object_info`)
  lists them: required then optional, only inputs that are widgets (INT, FLOAT, STRING, BOOLEAN,
  combos; not `forceInput` ones);
- a widget flagged `control_after_generate` (seeds) is followed by one extra value in the UI
  ("fixed", "randomize", ...), which is not an input and is skipped;
- links override widgets (a widget converted to an input keeps its slot in `widgets_values`);
- frontend-only nodes vanish: Reroute is followed through, PrimitiveNode already copied its
  value into the widget it feeds, Note/MarkdownNote are dropped;
- muted nodes (mode 2) are dropped; bypassed nodes (mode 4) pass the input of the same type
  through to their consumers.
Subgraphs (the newer frontend's node groups) are not supported and are refused.
"""
from __future__ import annotations

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
# Nodes that exist only in the browser.
VIRTUAL_NODES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
MODE_MUTED, MODE_BYPASSED = 2, 4


def _spec_options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_widget(spec) -> bool:
    """Whether an /object_info input spec is shown as a widget (so it has a widgets_values slot)."""
    kind = spec[0]
    if _spec_options(spec).get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_inputs(node_def: dict) -> list[tuple[str, dict]]:
    """(input name, options) of a node's widgets, in the order the editor creates them."""
    order = node_def.get("input_order") or {s: list(node_def["input"].get(s, {})) for s in ("required", "optional")}
    widgets = []
    for section in ("required", "optional"):
        specs = node_def["input"].get(section, {})
        for name in order.get(section, []):
            if name in specs and is_widget(specs[name]):
                widgets.append((name, _spec_options(specs[name])))
    return widgets


def _links_by_id(workflow: dict) -> dict:
    links = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):  # newer serialisation
            links[link["id"]] = (link["origin_id"], link["origin_slot"], link.get("type"))
        else:  # [id, origin_id, origin_slot, target_id, target_slot, type]
            links[link[0]] = (link[1], link[2], link[5] if len(link) > 5 else None)
    return links


def _map_widget_values(node: dict, node_def: dict) -> dict:
    values = node.get("widgets_values")
    if values is None:
        return {}
    widgets = widget_inputs(node_def)
    if isinstance(values, dict):  # some custom nodes save widgets by name
        return {name: values[name] for name, _ in widgets if name in values}
    mapped, i = {}, 0
    for name, options in widgets:
        if i >= len(values):
            break
        mapped[name] = values[i]
        i += 1
        controlled = options.get("control_after_generate")
        if controlled and i < len(values) and isinstance(values[i], str) and values[i] in CONTROL_VALUES:
            i += 1
    return mapped


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """API-format prompt for a UI-format `workflow`, using the server's `object_info`."""
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise ValueError("workflow uses subgraphs, which ui_to_api does not expand; unpack them in the editor")
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = _links_by_id(workflow)

    def source_of(link_id, seen=()):
        """(node id, slot) that really produces the value on `link_id`, or None if nothing does."""
        if link_id is None or link_id not in links:
            return None
        origin_id, slot, link_type = links[link_id]
        origin = nodes.get(origin_id)
        if origin is None or origin_id in seen:
            return None
        seen = (*seen, origin_id)
        if origin["type"] == "Reroute":
            return source_of((origin.get("inputs") or [{}])[0].get("link"), seen)
        if origin["type"] in VIRTUAL_NODES or origin.get("mode") == MODE_MUTED:
            return None
        if origin.get("mode") == MODE_BYPASSED:
            out_type = link_type or origin["outputs"][slot].get("type")
            inputs = origin.get("inputs") or []
            # Same rule as the editor: the input at the same index if its type matches, else the
            # first input of that type.
            ordered = ([inputs[slot]] if slot < len(inputs) else []) + inputs
            for inp in ordered:
                if inp.get("type") == out_type and inp.get("link") is not None:
                    return source_of(inp["link"], seen)
            return None
        return str(origin_id), slot

    prompt = {}
    for node_id, node in nodes.items():
        kind = node["type"]
        if kind in VIRTUAL_NODES or node.get("mode") in (MODE_MUTED, MODE_BYPASSED):
            continue
        if kind not in object_info:
            raise ValueError(f"node {node_id} ({kind!r}) is not installed on this ComfyUI; install its pack or remove it")
        node_def = object_info[kind]
        inputs = _map_widget_values(node, node_def)
        for inp in node.get("inputs") or []:
            src = source_of(inp.get("link"))
            if src is not None:
                inputs[inp["name"]] = [src[0], src[1]]
        prompt[str(node_id)] = {
            "class_type": kind,
            "inputs": inputs,
            "_meta": {"title": node.get("title") or node_def.get("display_name") or kind},
        }
    return prompt
