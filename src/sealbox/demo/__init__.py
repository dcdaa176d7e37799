"""``sealbox demo``: a demo appliance and the whole product run on it."""
