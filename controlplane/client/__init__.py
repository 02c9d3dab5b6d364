"""The typed client of the control-plane API (:mod:`.http`) and the models it reads
(:mod:`.models`): one client for the console and the drill commands."""
