"""The composition API (Medusa style): steps, workflows, references."""
