PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The community is in New York: show event days and times there unless told otherwise
# (the same default as utils/dates.py DEFAULT_TIMEZONE; PIPELINE_TIMEZONE=... make demo overrides it).
PIPELINE_TIMEZONE ?= America/New_York
export PIPELINE_TIMEZONE

.PHONY: setup demo test bench clean

# One-time environment: .venv plus the pinned requirements (re-installed when requirements.txt changes).
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Sample data only when data/raw has none; then every step script that exists, in order.
# Step 5 runs offline and without upload, so the demo needs no API key.
demo: $(STAMP)
	@test -s data/raw/users.json || $(PY) -m utils.sample_data --out data/raw
	@for step in step1_user_selection step2_event_selection step3_user_profile_enrich step4_event_enrich; do \
	  if [ -f pipeline/$$step.py ]; then echo "== $$step"; $(PY) pipeline/$$step.py || exit 1; fi; \
	done
	@if [ -f pipeline/step5_match_message.py ]; then echo "== step5_match_message"; \
	  $(PY) pipeline/step5_match_message.py --offline --no-upload; fi

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) data/processed/*.json logs/*.log logs/*.jsonl
