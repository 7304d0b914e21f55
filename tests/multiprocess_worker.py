"""One process of a two-process training run, started by tests/test_multiprocess.py.

    python multiprocess_worker.py ENGINE INDEX PORTS SCENARIO MODE OUT

ENGINE: ``jax`` (``jax.distributed`` on CPU, ``DataParallel`` or ``ModelParallel`` over
both processes' devices), ``tensorflow`` (Keras 3) or ``tf_keras`` (both with
``MultiWorkerMirroredStrategy``). PORTS: two free localhost ports. SCENARIO:

* ``freeze``: a frozen backbone and a trainable head, guarded (``on_violation="raise"``);
* ``raise`` / ``stop``: the same, and at the end of epoch 2 one process alone changes
  its own piece of a frozen kernel (JAX: the columns of a kernel that it holds under
  ``ModelParallel``; TensorFlow: its own replica of a mirrored kernel);
* ``killed``: process 1 dies at the end of epoch 2, before the guard's check (JAX: one
  device per process).

Writes OUT/result-INDEX.json (what the guard saw and did) and OUT/truth-INDEX.npz: the
process's own plain numpy copies of the pieces it holds of every weight, at the start
of training and after every epoch — the truth the test combines, never the plugin's.
"""

import json
import os
import sys
import time
import traceback
import warnings

ENGINE, INDEX, PORTS, SCENARIO, MODE, OUT = sys.argv[1:7]
INDEX = int(INDEX)
PORTS = PORTS.split(",")
EPOCHS = 3

if ENGINE == "jax":
    os.environ["KERAS_BACKEND"] = "jax"
    # two CPU devices per process; one in the killed scenario (one accelerator per
    # process, the common multi-host layout)
    devices_here = 1 if SCENARIO == "killed" else 2
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_here}"
    import jax

    # jax 0.10 on the CPU: the gloo collectives are the default (jax_cpu_collectives_
    # implementation); said here so that the run does not depend on it
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{PORTS[0]}",
        num_processes=2,
        process_id=INDEX,
        initialization_timeout=60,
    )
    import keras
else:
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"localhost:{port}" for port in PORTS]},
            "task": {"type": "worker", "index": INDEX},
        }
    )
    if ENGINE == "tf_keras":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    else:
        os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
    if ENGINE == "tf_keras":
        import tf_keras as keras
    else:
        import keras

import numpy as np  # noqa: E402 - after the engine is set up

from pytest_kerasfreeze import FreezeGuard, MultiProcessError  # noqa: E402

SHARDED = ENGINE == "jax" and SCENARIO in ("raise", "stop")  # ModelParallel: pieces


def distribute():
    if ENGINE != "jax":
        return
    devices = keras.distribution.list_devices("cpu")
    if not SHARDED:
        distribution = keras.distribution.DataParallel(devices=devices)
    else:  # the "model" axis across the two processes: each holds half of every kernel
        grid = np.array(devices).reshape(2, 2).T
        mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"], grid)
        layout = keras.distribution.LayoutMap(mesh)
        layout[".*kernel"] = (None, "model")
        distribution = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    distribution.auto_shard_dataset = False  # each process feeds its own batches
    keras.distribution.set_distribution(distribution)


def build():
    """The pattern users write: a frozen backbone, a trainable head."""
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, activation="relu", name="features")],
        name="backbone",
    )
    backbone.trainable = False
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(4, name="head")(backbone(inputs))
    model = keras.Model(inputs, outputs, name="finetune")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def held(variable):
    """This process's pieces of a weight, as plain numpy copies: {index text: array}."""
    value = variable.value if ENGINE != "tf_keras" else variable
    if ENGINE == "jax":  # addressable_data: addressable_shards fails with one device
        indices = value.sharding.devices_indices_map(value.shape)
        copies = {}
        for i in range(len(value.sharding.addressable_devices)):
            data = value.addressable_data(i)
            device = next(iter(data.devices()))
            copies[f"{[(s.start, s.stop) for s in indices[device]]}@{device.id}"] = np.array(data)
        return copies
    return {f"replica{i}": np.array(r.numpy()) for i, r in enumerate(value.values)}


class Truth(keras.callbacks.Callback):
    """Keeps the truth (before the guard, which comes after it in ``callbacks``)."""

    def __init__(self):
        super().__init__()
        self.arrays = {}

    def keep(self, when):
        for w in self.model.weights:
            for index, array in held(w).items():
                self.arrays[f"{when}|{w.path if hasattr(w, 'path') else w.name}|{index}"] = array

    def on_train_begin(self, logs=None):
        self.keep("begin")

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and SCENARIO in ("raise", "stop"):
            nudge(self.model)
        if epoch == 1 and SCENARIO == "killed" and INDEX == 1:
            os._exit(17)  # dies before the guard's check at the end of epoch 2
        self.keep(f"epoch{epoch}")


def nudge(model):
    """One process alone changes its own piece of the frozen kernel."""
    kernel = model.get_layer("backbone").get_layer("features").kernel
    if ENGINE == "jax":  # only the columns process 1 holds (a global, SPMD assignment)
        columns = np.zeros(kernel.shape, "float32")
        columns[:, kernel.shape[1] // 2 :] = 1e-3
        kernel.assign(kernel.value + columns)
    elif INDEX == 1:  # this worker's replica only
        mirrored = kernel if ENGINE == "tf_keras" else kernel.value
        mirrored.values[0].assign(mirrored.values[0] + 1e-3)


def data():
    rng = np.random.default_rng(INDEX)
    x = rng.normal(size=(32, 8)).astype("float32")
    y = rng.normal(size=(32, 4)).astype("float32")
    if ENGINE == "jax":
        return dict(x=x, y=y, batch_size=8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dict(x=dataset.with_options(options))


def main():
    distribute()
    if ENGINE == "jax":
        model = build()
    else:
        with STRATEGY.scope():
            model = build()
    on_violation = "stop" if SCENARIO == "stop" else "raise"
    guard = FreezeGuard(frozen="backbone", trains="head", on_violation=on_violation, mode=MODE)
    truth = Truth()
    result = {"index": INDEX, "error": None, "process": None, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            history = model.fit(
                **data(), epochs=EPOCHS, verbose=0, callbacks=[truth, guard], shuffle=False
            )
            result["epochs"] = len(history.history["loss"])
        except Exception as err:  # noqa: BLE001 - what the user's script would see
            result["error"] = type(err).__name__
            result["message"] = str(err)
            result["process"] = getattr(err, "process", None)
            result["traceback"] = traceback.format_exc()
        result["warnings"] = [str(w.message) for w in caught if "FreezeGuard" in str(w.message)]
    result["checks"] = [
        {
            "epoch": check.epoch,
            "passed": check.passed,
            "moved": sorted(c.path for c in check.diff.moved()),
            "figures": [
                [c.path, c.moved, c.max_abs_delta, c.rel_delta, c.changed_fraction]
                for c in check.diff.changes
            ],
            "drift": [f.kind for f in check.diff.findings() if f.kind == "replica drift"],
        }
        for check in guard.results
    ]
    result["is_multiprocess_error"] = result["error"] == MultiProcessError.__name__
    np.savez(os.path.join(OUT, f"truth-{INDEX}.npz"), **truth.arrays)
    written = os.path.join(OUT, f"result-{INDEX}.json")
    with open(written + ".part", "w") as f:
        json.dump(result, f)
    os.replace(written + ".part", written)
    if INDEX == 0 and SCENARIO != "killed":
        # process 0 hosts the coordination service: a peer whose service goes away
        # aborts (the engine's own failure handling), so it stays until the peer is done
        peer, deadline = os.path.join(OUT, "result-1.json"), time.monotonic() + 60
        while not os.path.exists(peer) and time.monotonic() < deadline:
            time.sleep(0.1)
    sys.stdout.flush()
    os._exit(0)  # no shutdown barrier: a peer may be gone (the killed scenario)


main()
