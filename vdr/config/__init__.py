"""params.yaml: the typed schema of each section, the whole file, and the profiles composed from conf/."""
