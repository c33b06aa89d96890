# Conveniences over ./dev (which needs nothing but bash on a fresh Debian 12).
.PHONY: setup lab test unit bench lint typecheck mutate schema
setup:
	./dev setup
lab:
	./dev lab
test:
	./dev test
unit:
	.venv/bin/pytest -q -rfEs tests/unit
lint:
	.venv/bin/ruff check .
typecheck:  # mypy --strict on the core ([tool.mypy] in pyproject.toml)
	.venv/bin/mypy
# Curated compiler/simulator mutants, each of which a behavioural test must kill.
mutate:
	.venv/bin/python tests/mutate.py
schema:  # regenerate docs/schema/ after changing sdnctl/schema.py (a unit test compares)
	.venv/bin/sdnctl schema policy > docs/schema/policy.schema.json
	.venv/bin/sdnctl schema topology > docs/schema/topology.schema.json
bench:
	.venv/bin/python benchmarks/compile_scale.py
	.venv/bin/python benchmarks/flow_growth.py
	.venv/bin/python benchmarks/dataplane.py
	.venv/bin/python benchmarks/convergence.py
	.venv/bin/python benchmarks/failover.py
