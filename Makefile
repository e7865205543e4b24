# medcl — set-up, tests and builds. Two commands do everything on a fresh machine:
#   make demo   creates .venv, installs torch ($(TORCH_SPEC)) and medcl, runs the main job on the demo cohort
#   make test   same set-up, then the test suite, then `make cuda-check` when nvcc is present
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_OUT ?= demo-out
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CUDA_ARCHS ?= 80 90a
CHECK_DIR := build/cuda-check

.PHONY: all venv install demo compare test pytest cuda-check gpu-wheels gpu-check wheel bench clean

all: install

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	@touch $@

# Build tools and every runtime, test and codec dependency, read from pyproject.toml (one list).
# open_clip_torch and lightly (tests and bench load only open_clip/loss.py and lightly/loss/swav_loss.py)
# need torchvision, which has no build for this torch: --no-deps.
$(VENV)/.deps: $(VENV)/.torch pyproject.toml
	@mkdir -p build
	$(PY) -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); p = d['project']; \
	  print('\n'.join(d['build-system']['requires'] + ['cmake', 'wheel'] + p['dependencies'] + \
	  [r for extra in ('test', 'codecs') for r in p['optional-dependencies'][extra]]))" > build/requirements.txt
	$(PIP) install -q -r build/requirements.txt
	$(PIP) install -q --no-deps "open_clip_torch==3.3.0"
	$(PIP) install -q --no-deps "lightly==1.6.0"
	@touch $@

venv: $(VENV)/.deps

# Build and install medcl into the venv against its torch (never a build-isolated torch).
install: venv
	@start=$$(date +%s); \
	$(PIP) install -q --no-build-isolation --no-deps . && \
	echo "medcl: built and installed in $$(( $$(date +%s) - start )) s"

# The main job on the demo cohort, sized for 2 CPU cores: cohort → ContIG pretraining (image, snp)
# → embeddings (GWAS phenotype table) → linear probes vs a random-init encoder.
# 500 SNPs: with ~600 training people a linear SNP predictor of trait 1 (h² 0.5, 50 causal SNPs)
# can reach out-of-sample R² ≈ h²/(1 + M/(n·h²)) ≈ 0.19, against ≈ 0.07 with 2000 SNPs.
DEMO_COHORT ?= --snps 500
DEMO_PRETRAIN ?= --arch resnet18 --width 0.25 --image-size 96 --batch-size 64 --epochs 40 --lr 2e-3 \
	--genetics-hidden 512 --head-hidden 512 --workers 1 --log-every 20
DEMO_FINETUNE ?= --fractions 0.1,1 --repeats 3 --workers 1
demo: install
	@rm -rf $(DEMO_OUT)
	$(VENV)/bin/medcl info
	time $(VENV)/bin/medcl demo-data $(DEMO_OUT)/cohort $(DEMO_COHORT)
	time $(VENV)/bin/medcl pretrain --data $(DEMO_OUT)/cohort/manifest.csv \
	    --genotypes $(DEMO_OUT)/cohort/genotypes/demo --modalities image,snp --out $(DEMO_OUT)/run $(DEMO_PRETRAIN)
	$(VENV)/bin/medcl embed $(DEMO_OUT)/run/encoder.safetensors --data $(DEMO_OUT)/cohort/manifest.csv \
	    --format pheno --out $(DEMO_OUT)/embeddings.pheno
	$(VENV)/bin/medcl finetune $(DEMO_OUT)/run/encoder.safetensors --data $(DEMO_OUT)/cohort/manifest.csv \
	    --labels $(DEMO_OUT)/cohort/labels.csv --target cardiomegaly --task binary \
	    --out $(DEMO_OUT)/finetune-cardiomegaly $(DEMO_FINETUNE)
	$(VENV)/bin/medcl finetune $(DEMO_OUT)/run/encoder.safetensors --data $(DEMO_OUT)/cohort/manifest.csv \
	    --labels $(DEMO_OUT)/cohort/labels.csv --target bone_density --task regression \
	    --out $(DEMO_OUT)/finetune-bone_density $(DEMO_FINETUNE)
	@$(PY) -P -m medcl.demo_summary $(DEMO_OUT)   # -P: the installed medcl, not ./medcl

# Every pretraining method on the demo cohort (contig; simclr and swav with --pairs views and
# patient; puzzle), then one linear-probe table against random init (medcl/compare.py).
# Resumable: finished runs in $(COMPARE_OUT) are reused.
COMPARE_OUT ?= compare-out
COMPARE_ARGS ?=
compare: install
	time $(PY) -m medcl.compare --out $(COMPARE_OUT) $(COMPARE_ARGS)

pytest: install
	cd tests && ../$(PY) -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml .

test: pytest
	@if [ -n "$(NVCC)" ]; then $(MAKE) --no-print-directory cuda-check; \
	 else echo "cuda-check skipped: nvcc not found"; fi

# Compile every torch-free CUDA kernel header with nvcc for each arch in CUDA_ARCHS, and the
# thin .cu glue against torch's headers when they are there (syntax check; no GPU needed).
cuda-check:
	@test -n "$(NVCC)" || { echo "cuda-check: nvcc not found; put the CUDA toolkit on PATH" >&2; exit 2; }
	@mkdir -p $(CHECK_DIR)/stub/c10/cuda/impl
	@set -e; for k in csrc/ops/cuda/*_kernel.cuh; do \
	  n=$$(basename $$k .cuh); printf '#include "%s"\n' "$${k#csrc/}" > $(CHECK_DIR)/$$n.cu; \
	  for a in $(CUDA_ARCHS); do \
	    $(NVCC) -std=c++17 -DMEDCL_CUDA_CHECK -Icsrc -c $(CHECK_DIR)/$$n.cu -o $(CHECK_DIR)/$$n.sm_$$a.o \
	      -gencode arch=compute_$$a,code=sm_$$a; \
	    echo "cuda-check: $$k sm_$$a ok"; \
	  done; \
	done
	@set -e; T=$$($(PY) -c "import torch,os;print(os.path.dirname(torch.__file__))" 2>/dev/null || true); \
	if [ -n "$$T" ] && [ -f "$$T/include/c10/cuda/CUDAStream.h" ]; then \
	  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > $(CHECK_DIR)/stub/c10/cuda/impl/cuda_cmake_macros.h; \
	  for g in csrc/ops/cuda/*.cu; do \
	    $(NVCC) -std=c++17 -Icsrc -I$(CHECK_DIR)/stub -I$$T/include -I$$T/include/torch/csrc/api/include \
	      -D_GLIBCXX_USE_CXX11_ABI=$$($(PY) -c "import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))") \
	      --expt-relaxed-constexpr -w -c $$g -o $(CHECK_DIR)/$$(basename $$g .cu).glue.o \
	      -gencode arch=compute_90a,code=sm_90a; \
	    echo "cuda-check: $$g (glue, against torch headers) sm_90a ok"; \
	  done; \
	else echo "cuda-check: torch headers not found; glue .cu files not checked"; fi

# A wheel for the installed torch/CUDA, with a local version tag such as +pt213cpu or +pt211cu130.
wheel: venv
	rm -rf dist/raw && $(PIP) wheel -q --no-build-isolation --no-deps -w dist/raw .
	@set -e; tag=$$($(PY) -c "import torch;v=torch.__version__.split('+')[0].split('.');c=torch.version.cuda;print('pt'+v[0]+v[1]+('cu'+c.replace('.','') if c else 'cpu'))"); \
	whl=$$(ls dist/raw/medcl-*.whl); ver=$$(basename $$whl | cut -d- -f2); \
	rm -rf dist/unpack && $(PY) -m wheel unpack -d dist/unpack $$whl >/dev/null; \
	d=dist/unpack/medcl-$$ver; mv $$d/medcl-$$ver.dist-info $$d/medcl-$$ver+$$tag.dist-info; \
	sed -i "s/^Version: $$ver\$$/Version: $$ver+$$tag/" $$d/medcl-$$ver+$$tag.dist-info/METADATA; \
	$(PY) -m wheel pack -d dist $$d; rm -rf dist/unpack dist/raw; ls dist/medcl-*$$tag*.whl

# The lent-GPU check (bench/NOTES.md, "GPU check"). `make gpu-wheels` runs HERE (network): the
# Python packages the GPU machine lacks, as wheels for its Python 3.12, into .whl/ (ignored; the
# device tool carries it). `make gpu-check` runs THERE, in one call: installs them, builds medcl
# with MEDCL_CUDA=1 for the GPU present only, runs every `gpu` test, compute-sanitizer and the
# GPU benchmarks within GPU_CHECK_BUDGET seconds, logs and JSON under $$OUT, one table last.
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS := bench/gpu-wheels.txt
gpu-wheels:
	@mkdir -p .whl
	@set -e; grep -v '^\s*#' $(GPU_WHEELS) | grep -v '^\s*$$' | while read -r req; do \
	  $(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) \
	    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
	    --platform any -d .whl "$$req"; \
	done
	@du -ch .whl/*.whl | tail -1 | sed 's/total/in .whl (the device tool carries at most 64 MiB with the tree)/'

GPU_CHECK_BUDGET ?= 540
gpu-check:
	GPU_CHECK_BUDGET=$(GPU_CHECK_BUDGET) bash bench/gpu_check.sh

bench: install
	$(PY) bench/intensity.py
	$(PY) bench/contrastive.py
	$(PY) bench/sinkhorn.py
	$(PY) bench/decode_augment.py

clean:
	rm -rf build dist $(DEMO_OUT) $(COMPARE_OUT)
