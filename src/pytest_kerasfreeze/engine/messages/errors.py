"""What bad input is told: each text says what was wrong and what to do instead."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pytest_kerasfreeze.engine.messages import (
    MAX_LISTED_PATHS,
    MAX_TRAINED_PATHS,
    plural,
    selector_text,
)


def describe(obj: Any) -> str:
    """A short description of what the user passed."""
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(obj).__name__} {text}"


def did_you_mean(text: str, candidates: Sequence[str]) -> str:
    """`` Did you mean 'base'?`` — or nothing when nothing is close."""
    close = difflib.get_close_matches(text, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def listing(model: str, paths: Sequence[str], what: str = "Layers") -> str:
    shown = "\n".join(f"  {p}" for p in paths[:MAX_LISTED_PATHS])
    more = len(paths) - MAX_LISTED_PATHS
    if more > 0:
        shown += f"\n  ... and {more} more"
    return f"\n{what} of model {model!r}:\n{shown or '  (none)'}"


# -- models -----------------------------------------------------------------------------
def not_a_model(obj: Any) -> str:
    return (
        f"expected a Keras model (keras.Model, or a tf_keras one), got {describe(obj)}. "
        f"Pass the model object whose weights the check should watch."
    )


def not_built(kind: str, name: str) -> str:
    return (
        f"{kind} {name!r} is not built yet, so it has no weights to watch. Build it first: "
        f"give it an Input (keras.Input(shape=...)), call it once on a batch of data, or "
        f"call {name}.build(input_shape) if it defines call()."
    )


def no_weights(what: str, name: str) -> str:
    return (
        f"{what} {name!r} has no weights: there is nothing a freeze check could watch. "
        f"Check the layers it is made of (they may all be weightless, like Flatten or "
        f"Dropout)."
    )


def emptied_variable(path: str) -> str:
    return (
        f"weight {path!r} holds no value. On JAX, Keras moves every variable's value into "
        f"the training state during fit() and puts it back at the end; a fit() that raised "
        f"left them empty. The model cannot be read or trained any more: build it again "
        f"(and see the exception that fit() raised)."
    )


# -- selectors --------------------------------------------------------------------------
def selected_no_weights(selection: str, model: str) -> str:
    return (
        f"the selection ({selection}) of model {model!r} holds no weights: there is "
        f"nothing to watch. Select layers that have weights (Dense, Conv, Embedding, "
        f"BatchNormalization, ...) or weight paths like 'dense/kernel'."
    )


def bad_selector(obj: Any) -> str:
    return (
        f"a selector must be a layer name, a path like 'outer/inner' (or a weight path "
        f"'outer/dense/kernel'), a glob, or a Layer/Model/variable object of the model; "
        f"got {describe(obj)}"
    )


def not_in_model(obj: Any, kind: str, model: str, paths: Sequence[str]) -> str:
    name = str(getattr(obj, "path", None) or obj.name).split(":", 1)[0]  # tf_keras: ":0"
    what = "Weights" if kind == "weight" else "Layers"
    return (
        f"{kind} {name!r} ({type(obj).__name__}) is not part of model {model!r}. Pass a "
        f"{kind} of this model, or its name or path.{listing(model, paths, what)}"
    )


def empty_selector(selector: Any, model: str, paths: Sequence[str]) -> str:
    return (
        f"empty selector {selector!r}: name a layer, a path like 'outer/inner' or a glob "
        f"like 'block*'.{listing(model, paths)}"
    )


def ambiguous(kind: str, selector: Any, model: str, n: int, paths: Sequence[str]) -> str:
    shown = "\n".join(f"  {p}" for p in paths)
    return (
        f"layer {kind} {selector!r} is ambiguous in model {model!r}: {n} different layers "
        f"have it, at\n{shown}\nSelect one by its path (e.g. {paths[0]!r})."
    )


def no_match(kind: str, selector: Any, model: str, suggestion: str, paths: Sequence[str]) -> str:
    return (
        f"no layer or weight of model {model!r} matches the {kind} {selector!r}."
        f"{suggestion}{listing(model, paths)}"
    )


def nothing_left(selection: str, model: str) -> str:
    return (
        f"{selection} of model {model!r} leaves no weight to check: the exclude= selectors "
        f"cover the whole selection."
    )


def not_watched(selection: str, watched: str, model: str) -> str:
    return (
        f"the weights of {selection} were not watched by this diff; it watches {watched} of "
        f"model {model!r}"
    )


def no_declared_trainable(source: str, selection: str, model: str) -> str:
    return (
        f"{source}: {selection} of model {model!r} declares no trainable weights, so "
        f"nothing can be required to train. Select layers with kernels, biases, embeddings "
        f"or BatchNormalization gamma/beta."
    )


# -- checks and diffs -------------------------------------------------------------------
def fit_arguments_without_x(check: str, given: Sequence[str]) -> str:
    return (
        f"{check}() got {', '.join(given)} but no x: pass x (and y) to let it call "
        f"model.fit() itself, or use it as a context manager around your own training "
        f"code: `with {check}(model, ...): model.fit(x, y)`"
    )


def by_needs_attribution(model: str) -> str:
    return (
        f"by= asks which optimizer moved the weights of model {model!r}, but this diff "
        f"was not watched while it trained: use assert_frozen(model, ..., by=...) or "
        f"weight_tracker.watch(model) around the training call, in a test (or the "
        f"frozen marker with by=)."
    )


def by_not_held(name: str, model: str, held: list[str]) -> str:
    holds = f"it holds {', '.join(repr(n) for n in held)}" if held else "it holds no optimizer"
    return (
        f"by={name!r}: model {model!r} has no optimizer attribute of that name ({holds}): "
        f"pass the optimizer object itself (by=other_model.optimizer for an optimizer "
        f"another model holds), or the name of an attribute of {model!r} that holds one"
    )


def by_not_an_optimizer(by: Any) -> str:
    return (
        f"by={by!r} is not an optimizer: pass a Keras optimizer object (held by the "
        f"watched model or by another one, e.g. by=online.optimizer) or the name of the "
        f"model attribute that holds it, e.g. by='g_optimizer'"
    )


def not_a_real_number(name: str, value: Any) -> str:
    return f"{name} must be a real number like 1e-6, got {type(value).__name__} {value!r}"


def negative_tolerance(name: str, value: Any) -> str:
    return f"{name} must be a finite number >= 0, got {value!r}"


def different_snapshots() -> str:
    return (
        "cannot compare snapshots of different weights: take both snapshots of the same "
        "model with the same selection (or use before.retake())"
    )


def not_snapshots(before: Any, after: Any) -> str:
    return (
        "diff(before, after) compares two Snapshot objects taken with snapshot(); got "
        f"{type(before).__name__} and {type(after).__name__}"
    )


def diff_still_empty() -> str:
    return "this WeightDiff is still empty: it is filled when its watch() block exits"


def values_not_kept(model: str, atol: float, rtol: float) -> str:
    return (
        f"this diff of model {model!r} kept its figures but not the weights' values "
        f"(weight_tracker.records and digest snapshots keep no copies), so it cannot be "
        f"judged again with atol={atol:g}, rtol={rtol:g}. Watch the call with "
        f"weight_tracker.watch(model) (mode='copy') to keep the values."
    )


def digest_has_no_values(model: str) -> str:
    return (
        f"this snapshot of model {model!r} is a digest (a hash and a norm per weight): it "
        f"keeps no values, so it says exactly whether a weight moved but not by how much. "
        f"Take it with mode='copy' to read values or judge with atol/rtol."
    )


def cannot_digest(dtype: Any) -> str:
    return f"cannot digest a weight of dtype {dtype}: only numbers and booleans are hashed"


def incomparable_digests(before: str, n_before: int, after: str, n_after: int) -> str:
    return (
        f"two digests of one weight that cannot be compared: {before} over {n_before} "
        f"shard(s), then {after} over {n_after}; take both snapshots where the weight "
        "lives (host or accelerator) and with one sharding"
    )


def fingerprint_too_large(words: int) -> str:
    return f"the device fingerprint takes up to 2**32 words (16 GiB) per weight, not {words}"


def bad_mode(mode: Any, choices: Sequence[str]) -> str:
    return f"mode={mode!r} is not a snapshot mode: use one of {', '.join(choices)}"


def copy_does_not_fit(watched: int, available: int, source: str) -> str:
    return (
        f"a copy of the {watched / 2**30:.2f} GiB watched would not fit in the "
        f"{available / 2**30:.2f} GiB of memory available ({source}): take the snapshot "
        f"with mode='digest' (a hash and a norm per weight) or mode='auto'"
    )


def snapshot_released(model: str) -> str:
    return (
        f"this snapshot of model {model!r} no longer holds its values (a training record "
        f"keeps only the figures of its diff): take a new snapshot, or watch the call with "
        f"weight_tracker.watch(model)"
    )


# -- markers ----------------------------------------------------------------------------
MARKER_USAGE = {
    "frozen": "frozen(*layers, exclude=(), by=None, atol=0.0, rtol=0.0, optimizer_state=False)",
    "trains": "trains(*layers, exclude=(), atol=0.0, rtol=0.0)",
    "trains_only": "trains_only(*layers, allow=(), exclude=(), atol=0.0, rtol=0.0)",
    "inference_mode": "inference_mode(*layers, exclude=())",
}
MARKER_HELP = {
    "frozen": "every fit()/train_on_batch() of the test on a model holding the selected "
    "weights must leave them unchanged (pytest-kerasfreeze)",
    "trains": "every fit()/train_on_batch() of the test on a model holding the selected "
    "weights must move their declared-trainable weights (pytest-kerasfreeze)",
    "trains_only": "every fit()/train_on_batch() of the test on a model holding the "
    "selected weights must move their declared-trainable weights and no other weight of "
    "the model (pytest-kerasfreeze)",
    "inference_mode": "every fit()/train_on_batch() of the test on a model holding the "
    "selected layers must run their BatchNormalization, Dropout and other training-"
    "dependent layers in inference mode (pytest-kerasfreeze)",
}


def marker_unknown_keywords(name: str, unknown: Sequence[str], usage: str) -> str:
    return (
        f"@pytest.mark.{name}: unknown keyword argument(s) {', '.join(unknown)}; it takes {usage}"
    )


def marker_needs_layers(name: str, usage: str) -> str:
    return (
        f"@pytest.mark.{name}() needs at least one layer: write {usage} with layer names, "
        f"paths like 'outer/inner' or globs like 'block*', e.g. @pytest.mark.{name}('base'), "
        f"or exclude= alone for every weight but those, e.g. "
        f"@pytest.mark.{name}(exclude='head')"
    )


def marker_bad_by(name: str, by: Any) -> str:
    return (
        f"@pytest.mark.{name}: by={by!r} is not an optimizer: give the optimizer object "
        f"or the name of the model attribute that holds it, e.g. by='g_optimizer'"
    )


def marker_bad_selector(name: str, arg: Any) -> str:
    return (
        f"@pytest.mark.{name}: {arg!r} is not a layer selector; give layer names, paths "
        f"like 'outer/inner', globs like 'block*', or Layer objects"
    )


def keras_not_importable(err: ImportError) -> str:
    return (
        f"Keras could not be imported, so no training could be observed ({err}). Install "
        f"Keras with a backend in this environment, e.g. pip install "
        f'"pytest-kerasfreeze[tensorflow]" (or [jax], [torch]).\n'
    )


def trained_model_line(name: str, calls: dict[str, int], paths: Sequence[str]) -> str:
    done = ", ".join(f"{m} ×{n}" for m, n in calls.items())
    if not paths:
        return (
            f"  {name!r} ({done}): held no weights when training started, so they could "
            f"not be snapshotted; build it first (give it an Input, or call it on one batch)"
        )
    shown = ", ".join(paths[:MAX_TRAINED_PATHS])
    more = len(paths) - MAX_TRAINED_PATHS
    return f"  {name!r} ({done}): layers {shown}" + (f", ... {more} more" if more > 0 else "")


def checked_nothing(label: str, selectors: Sequence[Any], hint: str, trained: Sequence[str]) -> str:
    if trained:
        models = "Models trained in this test:\n" + "\n".join(trained)
    else:
        models = "No model was trained in this test: no fit() or train_on_batch() ran."
    return (
        f"{label} checked nothing: no model trained in this test holds a layer with "
        f"weights matching {selector_text(selectors)}.{hint}\n{models}\n"
        f"Fix the layer names of the marker, or train the model it is meant for."
    )


def partly_matched(label: str, unmatched: Sequence[Any]) -> str:
    return f"{label}: {selector_text(unmatched)} matched no layer of any model trained in this test"


def thread_failures(messages: Sequence[str]) -> str:
    return "a marker check failed in a thread the test started:\n\n" + "\n\n".join(messages)


def trap_error(text: str) -> str:
    return f"compile-order trap (--kerasfreeze-trap=error), nothing was trained:\n{text}"


# -- FreezeGuard ------------------------------------------------------------------------
def guard_needs_a_check() -> str:
    return (
        "FreezeGuard needs something to check: give frozen=, trains= or trains_only= "
        "(layer names, paths, weight paths or globs), e.g. FreezeGuard(frozen='backbone')"
    )


def guard_bad_every(every: Any) -> str:
    return f"FreezeGuard(every={every!r}): use 'epoch' or a number of batches >= 1"


def guard_bad_on_violation(value: Any, choices: Sequence[str]) -> str:
    return f"FreezeGuard(on_violation={value!r}): use one of {', '.join(choices)}"


def guard_not_started() -> str:
    return (
        "FreezeGuard.check() before training began: the guard snapshots the model in "
        "on_train_begin; pass it to fit(callbacks=[guard])"
    )


def guard_stopped(model: str) -> str:
    return f"FreezeGuard stopped the training of {model!r} (model.stop_training = True)."


# -- options ----------------------------------------------------------------------------
def bad_digest_above(value: str) -> str:
    return (
        f"kerasfreeze_digest_above = {value!r} is not a number of bytes: give e.g. 2e9, "
        f"or leave it empty for a quarter of the memory available"
    )


def bad_trap_option(value: str, choices: Sequence[str]) -> str:
    return f"kerasfreeze_trap = {value!r} is not valid: use one of {', '.join(choices)}"


def json_unwritable(path: Any, problem: str) -> str:
    return (
        f"--kerasfreeze-json / kerasfreeze_json: cannot write the JSON report to {path}: "
        f"{problem}. Give the path of a file in a directory that exists or can be created."
    )


def json_write_failed(path: Any, err: Exception) -> str:
    return f"kerasfreeze: could not write the JSON report to {path}: {err}"


def weights_count(n: int) -> str:
    return plural(n, "weight")


def optimizer_state_bool(value: Any) -> str:
    return f"optimizer_state must be True or False, not {value!r}"


def slots_changed(label: str, model: str, n: int) -> str:
    return (
        f"{label} failed: the selected weights of model {model!r} did not move, but the "
        f"optimizer state kept for them did ({n} slot{'s' if n != 1 else ''} changed: "
        "momenta/moments keep accumulating for weights that do not train)"
    )


# -- save and reload --------------------------------------------------------------------
def reload_bad_format(value: Any, formats: Sequence[str]) -> str:
    return (
        f"assert_reload_trains_the_same: format={value!r} is not one of "
        f"{', '.join(repr(f) for f in formats)} ('tf' is tf_keras' SavedModel)"
    )


def reload_tf_needs_tf_keras(model: str) -> str:
    return (
        f"assert_reload_trains_the_same: format='tf' (a SavedModel) exists only in tf_keras; "
        f"model {model!r} is a Keras 3 model: use format='keras' (or 'h5')"
    )


def reload_failed(model: str, format: str, path: str) -> str:
    return (
        f"pytest-kerasfreeze: the {format!r} round trip of model {model!r} did not load back "
        f"({path}): the saved file cannot restore this model as it is"
    )


def reload_differs(model: str, format: str, differences: dict[str, list[str]]) -> str:
    n = sum(len(lines) for lines in differences.values())
    lines = [
        f"assert_reload_trains_the_same failed: the {format!r} round trip of model {model!r} "
        f"changed {n} thing{'s' if n != 1 else ''}",
        "Expected: every weight's value, every weight's effective flag (what the next "
        "compile() trains) and every layer's own trainable flag the same after loading",
        "",
    ]
    for where, found in differences.items():
        lines.append(f"  {where}:")
        lines += [f"    {line}" for line in found]
    return "\n".join(lines)


# -- inference mode ---------------------------------------------------------------------
def no_training_dependent_layer(target: str, model: str) -> str:
    return (
        f"assert_inference_mode: {target} of model {model!r} holds no layer whose behaviour "
        "depends on training (BatchNormalization, Dropout, a layer whose call takes "
        "training): there is nothing to check — select the layers that have one"
    )


def no_layer_matches(selector: str, model: str, paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:12]) + (" ..." if len(paths) > 12 else "")
    return f"no layer of model {model!r} matches {selector!r}; its layers: {shown}"


def modes_not_observed(model: str) -> str:
    return (
        f"assert_inference_mode could not see how the layers of model {model!r} ran: its "
        "train function was traced (by an earlier fit()) before the check started, so no "
        "layer code ran in Python during the block. Put the check around the first fit(), "
        "or call compile() again first (a new train function is traced inside the check)."
    )


# -- multi-process runs -----------------------------------------------------------------
def bad_combine_timeout(variable: str, text: str) -> str:
    return f"{variable}={text!r}: give the seconds a process waits for the others, above 0"


def process_did_not_answer(engine: str, other: int, me: int, check: int, timeout: float) -> str:
    return (
        f"process {other} of this {engine} multi-process run did not reach check {check} "
        f"within {timeout:g} s (this is process {me}): it failed, was killed or hangs. "
        f"No process judges a check alone, so this one stops here instead of waiting for "
        f"it. Look at process {other}'s log; set KERASFREEZE_COMBINE_TIMEOUT (seconds) "
        "if its checks are legitimately that much later."
    )


def process_failed(engine: str, other: int, me: int, check: int, failure: str) -> str:
    return (
        f"process {other} of this {engine} multi-process run failed at check {check} "
        f"(this is process {me}): {failure}. No process judges a check alone, so this "
        "one stops too."
    )


def values_elsewhere(path: str) -> str:
    return (
        f"{path} is spread over several processes: this process holds only its own pieces "
        "of it, so its whole value is not here to read (the figures of the diff are "
        "combined from every process)"
    )
