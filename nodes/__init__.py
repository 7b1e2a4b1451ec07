"""ComfyUI node classes (thin: validate inputs, call model/, shape outputs)."""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
