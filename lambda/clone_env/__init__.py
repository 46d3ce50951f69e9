"""Clone an MWAA environment into a new one: pure planner + custom-resource handler."""
