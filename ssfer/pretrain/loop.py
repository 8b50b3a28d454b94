"""The pretraining loop: BYOL on the pool's faces, epoch by epoch, resumable.

An epoch is one pass over the pool in a permutation seeded by (seed, epoch),
in full batches (the remainder of fewer than a batch waits for the next
epoch's permutation). Everything random is either stateless (that permutation)
or saved in the checkpoint written after every epoch (the views' generator, the
global RNG that feature dropout draws from, optimizer, target, step), so a
process killed at any moment and run again ends with the same weights, bit for
bit, as one that was never stopped. Learning rate and target momentum are
functions of the step, so no scheduler holds state.

The loss reaches the host every ``train.log_every`` steps; the kNN probe runs
every ``probe.every`` epochs and after the last.
"""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm  # plain bar: no widget warnings in executed notebooks

from ssfer.errors import CheckpointError, ConfigError, Interrupted, NonFiniteLoss, WriteError
from ssfer.io import atomic_write, atomic_write_text, file_sha256, load_weights_file, write_error
from ssfer.model import model_for
from ssfer.predict import resolve_device
from ssfer.pretrain.byol import BYOL, target_momentum
from ssfer.pretrain.config import PretrainConfig
from ssfer.pretrain.data import PretrainData, prepare
from ssfer.pretrain.probe import features, knn_accuracy
from ssfer.pretrain.record import REBUILD, WEIGHTS, PretrainRecord, pretraining_code_digest
from ssfer.pretrain.views import PairViews
from ssfer.record import environment

CHECKPOINT = "checkpoint.pt"
RESTART_HINT = "rerun with `ssfer pretrain --restart` (or `pretrain(..., restart=True)`) to discard it and start over"


def _seed(*parts: int) -> int:
    """A stable seed from integers (numpy's SeedSequence: the same on every machine)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _save(obj, path: Path) -> None:
    atomic_write(path, functools.partial(torch.save, obj))


class Pretrainer:
    def __init__(self, cfg: PretrainConfig, run_dir: Path | None = None, data: PretrainData | None = None):
        self.cfg, self.run_dir = cfg, run_dir
        t = cfg.train
        self.device = resolve_device(t.device)
        if t.threads:
            torch.set_num_threads(t.threads)
        self.amp = self.device.type == "cuda" and t.amp
        self.channels_last = t.channels_last
        run_cfg = cfg.run_config()
        self.data = data if data is not None else prepare(run_cfg, cfg.probe.bank, self.device, t.channels_last)
        n = len(self.data.pool)
        self.steps_per_epoch = n // t.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"train.batch_size: {t.batch_size} is more than the {n} faces pretraining may use")
        self.total_steps = t.epochs * self.steps_per_epoch

        torch.manual_seed(t.seed)  # the initial weights
        b = cfg.byol
        self.byol = BYOL(model_for(run_cfg, self.data.num_classes), b.projector_hidden, b.projector_dim,
                         b.predictor_hidden).to(self.device)
        if self.channels_last:
            self.byol = self.byol.to(memory_format=torch.channels_last)
        self.views = PairViews(cfg.views, cfg.data.channels).to(self.device)
        self.optimizer = self._optimizer()
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(_seed(t.seed, 1))

        self.step = 0
        self.history: list[dict] = []
        self.loss_sum = torch.zeros((), device=self.device)
        self.logged_step = 0  # the step of the last loss row
        self.checkpoint_step: int | None = None
        # seconds (wall and CPU) before this process took over, and when it started
        self._before = (0.0, 0.0)
        self._start = (time.perf_counter(), time.process_time())
        self._perm_epoch, self._perm = -1, None

    # ---- set-up -------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        decay, no_decay = [], []
        for p in self.byol.online_parameters():
            # no decay on biases and norm scales, as BYOL (and the trainer) have it
            (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if t.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum)
        return torch.optim.AdamW(groups, lr=t.lr)

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``train.warmup_epochs``, then a cosine to zero."""
        t = self.cfg.train
        warm = t.warmup_epochs * self.steps_per_epoch
        if step < warm:
            return t.lr * (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        return t.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    # ---- sampling -----------------------------------------------------
    def batch_positions(self, step: int) -> torch.Tensor:
        """Positions in the pool of the faces of ``step``: the step's slice of its
        epoch's permutation, seeded by (seed, epoch), so a resumed run draws the
        same batches."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_seed(self.cfg.train.seed, 2, epoch))
            self._perm = torch.randperm(len(self.data.pool), generator=g).to(self.device)
            self._perm_epoch = epoch
        b = self.cfg.train.batch_size
        return self._perm[i * b:(i + 1) * b]

    def drawn(self, step: int) -> np.ndarray:
        """Train-split indices of the faces of ``step``."""
        return self.data.pool[self.batch_positions(step).cpu().numpy()]

    # ---- the step -----------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def train_step(self) -> None:
        self.byol.train()
        x = self.data.pool_x[self.batch_positions(self.step)]
        v1, v2 = self.views.pair(x, self.gen)
        if self.channels_last:
            v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        with self._autocast():
            loss = self.byol(v1, v2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.byol.update_target(self.momentum_at(self.step))
        self.loss_sum += loss.detach()

    def momentum_at(self, step: int) -> float:
        return target_momentum(step, self.total_steps, self.cfg.byol.momentum)

    # ---- probe, logs, checkpoints -------------------------------------
    def probe(self) -> float:
        """Validation kNN accuracy of the online encoder's features, bank = ``data.bank_x``."""
        d, p = self.data, self.cfg.probe
        with self._autocast():
            bank = features(self.byol.encoder, d.bank_x, self.views.eval_view)
            queries = features(self.byol.encoder, d.val_x, self.views.eval_view)
        return knn_accuracy(bank, d.bank_y, queries, d.val_y, d.num_classes, k=p.k, temperature=p.temperature)

    def seconds(self) -> tuple[float, float]:
        """Wall and CPU (all threads) seconds of training behind the current weights, over every resume."""
        return (self._before[0] + time.perf_counter() - self._start[0],
                self._before[1] + time.process_time() - self._start[1])

    def _where_kept(self) -> str:
        if self.run_dir is None:
            return "nothing was saved"
        if self.checkpoint_step is None:
            return "no checkpoint had been saved"
        return f"the last good checkpoint, {self.run_dir / CHECKPOINT} (step {self.checkpoint_step}), is kept"

    def _stop_if_not_finite(self, check_weights: bool = False) -> None:
        bad = not bool(torch.isfinite(self.loss_sum))
        if not bad and check_weights:
            bad = not all(bool(torch.isfinite(p).all()) for p in self.byol.online_parameters())
        if bad:
            raise NonFiniteLoss(f"non-finite BYOL loss or weights in steps {self.logged_step + 1}..{self.step}; "
                                f"{self._where_kept()}; lower train.lr, or check the data")

    def _log(self) -> dict:
        self._stop_if_not_finite()
        n = self.step - self.logged_step
        row = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
               "loss": float(self.loss_sum) / max(n, 1), "lr": self.lr_at(self.step - 1),
               "momentum": self.momentum_at(self.step)}
        self.loss_sum.zero_()
        self.logged_step = self.step
        return row

    def state_dict(self) -> dict:
        wall, cpu = self.seconds()
        s = {"step": self.step, "history": self.history, "config_hash": self.cfg.hash(),
             "byol": self.byol.state_dict(), "optimizer": self.optimizer.state_dict(),
             "loss_sum": self.loss_sum, "logged_step": self.logged_step,
             "gen": self.gen.get_state(), "rng": torch.get_rng_state(), "seconds": wall, "cpu_seconds": cpu}
        if self.device.type == "cuda":
            s["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return s

    def load_state_dict(self, s: dict, source: Path | str = "checkpoint") -> None:
        if not isinstance(s, dict) or "config_hash" not in s or "byol" not in s:
            raise CheckpointError(f"{source}: not an ssfer pretraining checkpoint; {RESTART_HINT}")
        if s["config_hash"] != self.cfg.hash():
            raise CheckpointError(f"{source}: the checkpoint belongs to a different config; {RESTART_HINT}")
        self.step, self.history, self.logged_step = s["step"], s["history"], s["logged_step"]
        self.byol.load_state_dict(s["byol"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.loss_sum.copy_(s["loss_sum"])
        self._before = (float(s["seconds"]), float(s["cpu_seconds"]))
        # map_location put the RNG states on the device; set_state takes CPU bytes
        self.gen.set_state(s["gen"].cpu())
        torch.set_rng_state(s["rng"].cpu())
        if "cuda_rng" in s and self.device.type == "cuda":
            torch.cuda.set_rng_state(s["cuda_rng"].cpu(), self.device)

    def save_checkpoint(self) -> None:
        self._stop_if_not_finite(check_weights=True)  # a checkpoint never holds a diverged model
        if self.run_dir is not None:
            _save(self.state_dict(), self.run_dir / CHECKPOINT)
            self.checkpoint_step = self.step

    def try_resume(self) -> bool:
        path = None if self.run_dir is None else self.run_dir / CHECKPOINT
        if path is None or not path.exists():
            return False
        self.load_state_dict(load_weights_file(path, map_location=self.device, hint=RESTART_HINT), path)
        self.checkpoint_step = self.step
        return True

    def _end_epoch(self) -> None:
        epoch, last = self.step // self.steps_per_epoch, self.cfg.train.epochs
        every = self.cfg.probe.every
        if (every and epoch % every == 0) or epoch == last:
            wall, cpu = self.seconds()
            self.history.append({"epoch": epoch, "step": self.step, "probe_accuracy": self.probe(),
                                 "seconds": wall, "cpu_seconds": cpu})
        if epoch < last:
            self.save_checkpoint()

    # ---- the loop -----------------------------------------------------
    def fit(self, stop_after: int | None = None, restart: bool = False) -> PretrainRecord | None:
        """Pretrain to ``train.epochs`` (resuming from a checkpoint when there is one).

        ``restart`` discards an interrupted run's checkpoint; ``stop_after`` ends
        after that many steps of this call without a record (how tests interrupt a
        run in process). Ctrl-C raises ``Interrupted``, saying what was kept.
        """
        try:
            return self._fit(stop_after, restart)
        except KeyboardInterrupt as e:
            if isinstance(e, Interrupted):
                raise
            raise Interrupted(f"pretraining interrupted at step {self.step} of {self.total_steps}; "
                              f"{self._where_kept()}"
                              + ("; the same command resumes from it" if self.checkpoint_step is not None else ""))

    def _write_early(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", self.cfg.to_yaml())
        except OSError as e:
            if isinstance(e, WriteError):
                raise
            raise write_error(self.run_dir, e) from e

    def _fit(self, stop_after: int | None, restart: bool) -> PretrainRecord | None:
        t = self.cfg.train
        # read now: code edited while the run goes must not be credited with it
        env = environment() | {"code_fingerprint": pretraining_code_digest()}
        if restart and self.run_dir is not None:
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        resumed = not restart and self.try_resume()
        if self.run_dir is not None:
            self._write_early()
        start = self.step
        self._start = (time.perf_counter(), time.process_time())
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not t.progress, desc="byol", leave=False)
        try:
            while self.step < self.total_steps:
                if stop_after is not None and self.step - start >= stop_after:
                    return None
                self.train_step()
                bar.update(1)
                if self.step % t.log_every == 0 or self.step == self.total_steps:
                    row = self._log()
                    self.history.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.3f}")
                if self.step % self.steps_per_epoch == 0:
                    self._end_epoch()
        finally:
            bar.close()
        self._stop_if_not_finite(check_weights=True)
        return self._finish(env, resumed)

    def _finish(self, env: dict, resumed: bool) -> PretrainRecord:
        d, t = self.data, self.cfg.train
        wall, cpu = self.seconds()
        probes = [row for row in self.history if "probe_accuracy" in row]
        summary = {"probe_accuracy": probes[-1]["probe_accuracy"] if probes else self.probe(),
                   "probe_k": self.cfg.probe.k, "probe_bank": self.cfg.probe.bank,
                   "epochs": t.epochs, "steps": self.step, "steps_per_epoch": self.steps_per_epoch,
                   "seconds": wall, "cpu_seconds": cpu, "threads": torch.get_num_threads(),
                   "device": str(self.device), "resumed": resumed, "class_names": list(d.class_names),
                   "n_pool": len(d.pool), "n_bank": len(d.bank_x), "n_val": len(d.val_x),
                   "weights": WEIGHTS, "rebuild": REBUILD}
        record = PretrainRecord(self.cfg, self.history, summary, environment=env)
        if self.run_dir is not None:
            _save(self.byol.backbone_state(), self.run_dir / WEIGHTS)
            summary["weights_sha256"] = file_sha256(self.run_dir / WEIGHTS)
            record.save(self.run_dir)
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        return record
