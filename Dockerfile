# dlrun image: the runner and its locked dependencies on a slim Python base.
#
#   make docker-build                       # GPU flavour: CUDA/cuDNN from NVIDIA's pip wheels
#   make docker-build FLAVOR=cpu            # no CUDA libraries
#   docker run --rm --gpus all -v "$PWD/runs:/workspace/runs" dlrun:gpu experiments/digits.yaml
#
# Not FROM tensorflow/tensorflow:2.21.0-gpu: that image pairs TF 2.21 (built for cuDNN 9) with a
# system cuDNN 8.9 and registers no GPU; docs/gpu-hosts.md ("Base image") has the evidence.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# gpu | cpu: whether the `gpu` extra (tensorflow[and-cuda]) is installed.
ARG FLAVOR=gpu
# Owner of the files written to mounted runs/: build with your host ids (make docker-build does).
ARG UID=1000
ARG GID=1000

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_BACKEND=tensorflow \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DLRUN_CONSTRAINTS=/opt/dlrun/requirements/docker-constraints.txt \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# tini as PID 1: forwards SIGTERM to dlrun (preemption -> exit 143) and reaps zombies.
# Unpinned: a pin breaks the build whenever Debian stable updates the package.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/dlrun
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY scripts/install.sh scripts/install.sh
# Dependencies are installed against a stub package so that a code change does not
# re-download TensorFlow and the CUDA wheels (several GB): the editable install maps
# `runner` to /opt/dlrun/runner, which the COPY below fills.
RUN case "$FLAVOR" in \
      gpu) extras=gpu ;; \
      cpu) extras= ;; \
      *) echo "FLAVOR must be gpu or cpu, got '$FLAVOR'" >&2; exit 2 ;; \
    esac \
 && mkdir -p runner && touch runner/__init__.py \
 && bash scripts/install.sh /opt/venv "$extras" \
 && python -c "import glob, sysconfig; print('\n'.join(sorted(glob.glob(sysconfig.get_paths()['purelib'] + '/nvidia/*/lib'))))" \
      > /etc/ld.so.conf.d/nvidia-pip.conf \
 && ldconfig
# (ld.so.conf above: TF 2.21's RUNPATH names only some of the nvidia/*/lib folders; without
# cusolver, curand, nvrtc and nvjitlink on the loader path it reports "Cannot dlopen some GPU
# libraries" and trains on the CPU.)
COPY runner/ runner/

# HOME is world-writable so that `docker run --user $(id -u):$(id -g)` with any ids can
# write ~/.keras and matplotlib's cache; the image's own user owns /workspace.
RUN [ "$UID" != 0 ] || { echo "UID must not be 0: the image runs as a non-root user" >&2; exit 2; } \
 && groupadd --non-unique --gid "$GID" dlrun \
 && useradd --non-unique --uid "$UID" --gid "$GID" --home-dir /home/dlrun --create-home \
      --shell /usr/sbin/nologin dlrun \
 && chmod 1777 /home/dlrun \
 && mkdir -p /workspace/runs /workspace/tensorflow_datasets
COPY experiments/ /workspace/experiments/
RUN chown -R "$UID:$GID" /workspace

ENV HOME=/home/dlrun \
    TFDS_DATA_DIR=/workspace/tensorflow_datasets
WORKDIR /workspace
VOLUME ["/workspace/runs", "/workspace/tensorflow_datasets"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER ${UID}:${GID}
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "dlrun"]
CMD ["experiments/digits.yaml"]
