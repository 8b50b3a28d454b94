"""One trainer for every algorithm: student + EMA teacher, a threshold rule and a
negative-label selector (see ``ssfer.algo.compose``).

The step does no host synchronisation: losses and diagnostics accumulate in
device tensors and reach the host only every ``train.log_every`` steps.
"""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from tqdm import tqdm  # plain bar: no widget warnings in executed notebooks

from ssfer.algo.compose import recipe_for
from ssfer.algo.losses import negative_loss, positive_loss, supervised_loss
from ssfer.algo.negatives import build_negatives
from ssfer.algo.thresholds import StepStats, build_threshold
from ssfer.config import Config
from ssfer.diagnostics import LabelDiagnostics
from ssfer.errors import CheckpointError, Interrupted, NonFiniteLoss, WriteError
from ssfer.metrics import classification_metrics
from ssfer.model import model_for
from ssfer.predict import predict_probs, resolve_device
from ssfer.io import atomic_write, atomic_write_text, load_weights_file, write_error
from ssfer.record import RunRecord, environment, weights_fingerprint
from ssfer.train import distributed as dist
from ssfer.train.data import TrainData, prepare
from ssfer.views import Views

CHECKPOINT = "checkpoint.pt"
RESTART_HINT = "rerun with `ssfer train --restart` (or `run(..., restart=True)`) to discard it and train from the start"


def _save_atomic(obj, path: Path) -> None:
    atomic_write(path, functools.partial(torch.save, obj))


def _seed_for(*parts: int) -> int:
    # a stable mix of integers (no Python hash randomisation)
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path | None = None, data: TrainData | None = None):
        self.cfg = cfg
        self.run_dir = run_dir
        t = cfg.train
        self.rank, self.world = dist.rank_and_world()
        self.device = dist.device_for_rank(resolve_device(t.device), self.rank)
        if t.threads:
            torch.set_num_threads(t.threads)
        cuda = self.device.type == "cuda"
        # channels_last helps oneDNN's CPU convolutions too (benchmarks/README.md)
        self.channels_last = t.channels_last
        self.amp = cuda and t.amp
        torch.manual_seed(t.seed)
        self.data = data if data is not None else prepare(cfg, self.device, self.channels_last)
        d = self.data
        c = d.num_classes
        self.recipe = recipe_for(cfg.algo)

        self.student = model_for(cfg, c).to(self.device)
        if self.channels_last:
            self.student = self.student.to(memory_format=torch.channels_last)
        self.ema = ModelEmaV3(self.student, decay=t.ema_decay, use_warmup=t.ema_warmup)
        self.model = dist.wrap(self.student, self.device) if self.world > 1 else self.student
        self.forward = torch.compile(self.model) if t.compile else self.model

        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        n_unl = len(d.unlabeled)
        self.threshold = (build_threshold(self.recipe.threshold, c, n_unl, **cfg.algo.threshold_args)
                          .to(self.device) if self.recipe.threshold != "none" else None)
        self.negatives = build_negatives(self.recipe.negatives, **cfg.algo.negatives_args).to(self.device)
        self.use_unlabeled = self.recipe.uses_unlabeled and n_unl > 0 and cfg.algo.lambda_u + cfg.algo.lambda_n > 0
        self.diag = LabelDiagnostics(c).to(self.device)
        self.student_labels = cfg.algo.pseudo_labels == "student"
        self.views = Views.for_channels(cfg.data.channels).to(self.device)

        # per-sample augmentation and sampling randomness lives on the device
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(_seed_for(t.seed, 1))
        counts = torch.bincount(d.train_y[d.labeled], minlength=c).float()
        # balanced: every class equally likely per draw (the rare classes are seen
        # often, the prior the model learns is flat); uniform: every labeled image alike
        self.labeled_weights = ((1.0 / counts.clamp_min(1))[d.train_y[d.labeled]] if t.labeled_sampling == "balanced"
                                else torch.ones(len(d.labeled), device=self.device))
        self.batch_u = t.batch_size * t.mu
        self.sums = torch.zeros(4, device=self.device)   # total, sup, pos, neg since last log
        self.step = 0
        self.history: list[dict] = []
        self.checkpoint_step: int | None = None  # step of the checkpoint on disk, if any
        # training seconds before this process took over (from the checkpoint) and
        # when it started, so a resumed run reports its whole training time
        self._seconds_before = 0.0
        self._t0 = time.perf_counter()
        self._perm_epoch = -1
        self._perm: torch.Tensor | None = None

    # ---- set-up -------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        parts = {True: ([], []), False: ([], [])}   # head?: (decayed, not decayed)
        split = t.backbone_lr_scale != 1.0   # at 1, the two groups every recorded run trained with
        for name, p in self.student.named_parameters():
            parts[split and name.startswith("head.")][p.ndim <= 1].append(p)
        groups = []
        # the head's groups first: the logged "lr" (group 0) is train.lr's schedule
        for head, lr in ((True, t.lr), (False, t.lr * t.backbone_lr_scale)):
            decay, no_decay = parts[head]
            if decay or no_decay:
                groups += [{"params": decay, "weight_decay": t.weight_decay, "lr": lr},
                           {"params": no_decay, "weight_decay": 0.0, "lr": lr}]
        fused = {"fused": True} if self.device.type == "cuda" else {}
        if t.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.momentum > 0, **fused)
        return torch.optim.AdamW(groups, lr=t.lr, **fused)

    def _lr_factor(self, step: int) -> float:
        t = self.cfg.train
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    @property
    def label_model(self) -> torch.nn.Module:
        """The network whose weak-view prediction gives the pseudo labels."""
        return self.student if self.student_labels else self.ema.module

    # ---- sampling -----------------------------------------------------
    def _labeled_batch(self) -> torch.Tensor:
        pick = torch.multinomial(self.labeled_weights, self.cfg.train.batch_size, replacement=True,
                                 generator=self.gen)
        return self.data.labeled[pick]

    def _unlabeled_positions(self, step: int) -> tuple[torch.Tensor, int]:
        """Positions in the unlabeled set for this step, and the epoch number.

        A fresh permutation per epoch, seeded by (seed, epoch): stateless, so a
        resumed run draws exactly the batches the uninterrupted one would.
        """
        n = len(self.data.unlabeled)
        start = step * self.batch_u
        epoch = start // n
        out = []
        need, pos = self.batch_u, start % n
        e = epoch
        while need > 0:
            perm = self._epoch_perm(e)
            take = perm[pos:pos + need]
            out.append(take)
            need -= len(take)
            pos, e = 0, e + 1
        return torch.cat(out), epoch

    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_seed_for(self.cfg.train.seed, 2, epoch))
            perm = torch.randperm(len(self.data.unlabeled), generator=g)
            # a pinned copy is asynchronous: no host sync at an epoch boundary on CUDA
            self._perm = (perm.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda"
                          else perm.to(self.device))
            self._perm_epoch = epoch
        return self._perm

    # ---- the step -----------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def train_step(self) -> None:
        cfg, d = self.cfg, self.data
        self.student.train()
        il = self._labeled_batch()
        xl = self.views.weak(d.train_x[il], self.gen)
        yl = d.train_y[il]
        bl = len(il)
        pos_loss = neg_loss = torch.zeros((), device=self.device)
        if self.use_unlabeled:
            pos_u, epoch = self._unlabeled_positions(self.step)
            iu = d.unlabeled[pos_u]
            xu_raw = d.train_x[iu]
            xu_w = self.views.weak(xu_raw, self.gen)
            xu_s = self.views.strong(xu_raw, self.gen) if self.recipe.student_view == "strong" \
                else self.views.weak(xu_raw, self.gen)
            sl, su = dist.shard(bl, self.rank, self.world), dist.shard(len(iu), self.rank, self.world)
            nl, nu = sl.stop - sl.start, su.stop - su.start
            with self._autocast():
                if self.student_labels:
                    # one student pass over [labeled; weak; strong], as USB's FixMatch step
                    logits = self.forward(torch.cat([xl[sl], xu_w[su], xu_s[su]]))
                else:
                    logits = self.forward(torch.cat([xl[sl], xu_s[su]]))
                    with torch.no_grad():
                        t_logits = self.ema.module(xu_w[su]).float()
            logits = logits.float()
            logits_l, logits_u = logits[:nl], logits[nl + nu:] if self.student_labels else logits[nl:]
            if self.student_labels:
                t_logits = logits[nl:nl + nu].detach()
            t_logits = dist.all_gather_cat(t_logits, self.world)
            probs_u = t_logits.softmax(1)
            probs_l = dist.all_gather_cat(logits_l.detach().softmax(1), self.world)
            if self.threshold is not None:
                self.threshold.update(StepStats(probs_u=probs_u, idx_u=pos_u, probs_l=probs_l, labels_l=yl,
                                                progress=self.step / cfg.train.steps, epoch=epoch))
                mask = self.threshold.mask(probs_u)
            else:
                mask = torch.zeros(len(iu), device=self.device)
            pseudo = probs_u.argmax(1)
            extra = {k: dist.all_gather_cat(v, self.world) for k, v in
                     self.negatives.teacher_inputs(self.label_model, xu_w[su], self._autocast).items()}
            neg_mask = self.negatives.select(t_logits, mask > 0, generator=self.gen, **extra)
            pos_loss = positive_loss(logits_u, pseudo[su], mask[su])
            neg_loss = negative_loss(logits_u, neg_mask[su])
            self.diag.update(pseudo, mask, d.train_y[iu], neg_mask)
        else:
            sl = dist.shard(bl, self.rank, self.world)
            with self._autocast():
                logits_l = self.forward(xl[sl]).float()
        sup_loss = supervised_loss(logits_l, yl[sl], cfg.train.label_smoothing)
        loss = sup_loss + cfg.algo.lambda_u * pos_loss + cfg.algo.lambda_n * neg_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.train.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.ema.update(self.student, step=self.step)
        self.sums += torch.stack([loss.detach(), sup_loss.detach(), pos_loss.detach(), neg_loss.detach()])

    # ---- evaluation ---------------------------------------------------
    def predict(self, x: torch.Tensor, model: torch.nn.Module | None = None, batch: int = 512) -> torch.Tensor:
        return predict_probs(model or self.ema.module, x, self.views, flip=self.cfg.train.eval_flip, batch=batch,
                             autocast=self._autocast)

    def evaluate(self, which: str = "test") -> dict:
        """Metrics of the EMA teacher on "test", "val", or "test_leak_free" (the
        test split without the images whose byte-identical copy is in train)."""
        d = self.data
        if which == "test":
            x, y = d.test_x, d.test_y
        elif which == "val":
            x, y = d.val_x, d.val_y
        elif which == "test_leak_free":
            keep = ~d.test_leaked
            x, y = d.test_x[keep], d.test_y[keep]
        else:
            raise ValueError(f"evaluate: which={which!r}; expected test, val or test_leak_free")
        probs = self.predict(x)
        return classification_metrics(probs.cpu().numpy(), y.cpu().numpy(), d.num_classes)

    # ---- logging and checkpoints ----------------------------------------
    def _logged_step(self) -> int:
        return self.history[-1]["step"] if self.history else 0

    def _mean_losses(self) -> list[float]:
        """Mean total, sup, pos, neg loss since the last log (a host sync)."""
        n = max(1, self.step - self._logged_step())
        # the losses on this rank's shard; averaged over ranks they are the global batch's
        return (dist.all_reduce_mean(self.sums, self.world) / n).tolist()

    def _stop_if_not_finite(self, means: list[float], check_weights: bool = False) -> None:
        """Raise ``NonFiniteLoss`` if a loss since the last log, or (``check_weights``)
        a weight of the student, is NaN or infinite.

        Called at the log cadence from sums the log reads anyway (a NaN or inf in
        any step leaves its sum non-finite) and, with the weights, before anything
        is saved: a checkpoint or a record never holds a diverged model.
        """
        bad = not all(math.isfinite(v) for v in means)
        if not bad and check_weights:
            tensors = [*self.student.parameters(), *(b for b in self.student.buffers() if b.is_floating_point())]
            bad = not bool(torch.stack([torch.isfinite(x).all() for x in tensors]).all())
        if not bad:
            return
        terms = ", ".join(f"{k}={v:.4g}" for k, v in zip(("total", "sup", "pos", "neg"), means))
        if self.run_dir is None:
            kept = "nothing was saved"
        elif self.checkpoint_step is None:
            kept = "no checkpoint had been saved and no record of this run was written"
        else:
            kept = (f"the last good checkpoint, {self.run_dir / CHECKPOINT} (step {self.checkpoint_step}), "
                    "is kept and no record of this run was written")
        raise NonFiniteLoss(f"non-finite loss or weights in steps {self._logged_step() + 1}..{self.step} "
                            f"(mean loss over them: {terms}); {kept}; lower train.lr, or check the data")

    def _log(self) -> dict:
        sums = self._mean_losses()
        self._stop_if_not_finite(sums)
        self.sums.zero_()
        rec = {"step": self.step, "loss": sums[0], "loss_sup": sums[1], "loss_pos": sums[2], "loss_neg": sums[3],
               "lr": self.scheduler.get_last_lr()[0]}
        if self.use_unlabeled:
            rec.update(self.diag.flush())
        if self.threshold is not None:
            rec["thresholds"] = self.threshold.per_class().tolist()
        return rec

    def state_dict(self) -> dict:
        s = {
            "step": self.step, "history": self.history, "config_hash": self.cfg.hash(),
            "student": self.student.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "negatives": self.negatives.state_dict(), "diag": self.diag.state_dict(), "sums": self.sums,
            "gen": self.gen.get_state(), "rng": torch.get_rng_state(), "train_seconds": self.train_seconds(),
        }
        if self.threshold is not None:
            s["threshold"] = self.threshold.state_dict()
        if self.device.type == "cuda":
            s["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return s

    def load_state_dict(self, s: dict, source: Path | str = "checkpoint") -> None:
        if not isinstance(s, dict) or "config_hash" not in s:
            raise CheckpointError(f"{source}: not an ssfer training checkpoint; {RESTART_HINT}")
        if s["config_hash"] != self.cfg.hash():
            raise CheckpointError(f"{source}: the checkpoint belongs to a different config; refusing to resume "
                                  f"from it; {RESTART_HINT}")
        self.step, self.history = s["step"], s["history"]
        self.student.load_state_dict(s["student"])
        self.ema.load_state_dict(s["ema"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        self.negatives.load_state_dict(s["negatives"])
        self.diag.load_state_dict(s["diag"])
        self.sums.copy_(s["sums"])
        self._seconds_before = float(s.get("train_seconds", 0.0))
        # map_location put the saved RNG states on the device; set_state takes CPU bytes
        self.gen.set_state(s["gen"].cpu())
        torch.set_rng_state(s["rng"].cpu())
        if self.threshold is not None:
            self.threshold.load_state_dict(s["threshold"])
        if "cuda_rng" in s and self.device.type == "cuda":
            torch.cuda.set_rng_state(s["cuda_rng"].cpu(), self.device)

    def train_seconds(self) -> float:
        """Seconds of training behind the current weights, over every resume."""
        return self._seconds_before + time.perf_counter() - self._t0

    def save_checkpoint(self) -> None:
        # every rank checks (collectively), so that all of them stop together
        self._stop_if_not_finite(self._mean_losses(), check_weights=True)
        if self.run_dir is None:
            return
        if self.rank == 0:
            _save_atomic(self.state_dict(), self.run_dir / CHECKPOINT)
        self.checkpoint_step = self.step

    def try_resume(self) -> bool:
        if self.run_dir is None or not (self.run_dir / CHECKPOINT).exists():
            return False
        path = self.run_dir / CHECKPOINT
        self.load_state_dict(load_weights_file(path, map_location=self.device, hint=RESTART_HINT), path)
        self.checkpoint_step = self.step
        return True

    # ---- the loop -----------------------------------------------------
    def fit(self, stop_after: int | None = None, restart: bool = False) -> RunRecord | None:
        """Train to ``train.steps`` (resuming from a checkpoint when there is one).

        ``restart`` discards an interrupted run's checkpoint (say, one reported
        as corrupt) and trains from the start. ``stop_after`` ends early after
        that many steps of this call without a summary: how the tests simulate
        an interruption. Ctrl-C raises ``Interrupted``, which says what was kept.
        """
        try:
            return self._fit(stop_after, restart)
        except KeyboardInterrupt as e:
            if isinstance(e, Interrupted):
                raise
            raise Interrupted(self._interrupted(restart)) from e

    def _interrupted(self, restart: bool) -> str:
        """What Ctrl-C leaves: the step, the checkpoint kept, and the way on. Nothing
        is saved now: the step it struck may be half done."""
        where = f"training interrupted after step {self.step} of {self.cfg.train.steps}"
        if self.run_dir is None:
            return f"{where}; nothing was saved"
        ckpt = self.run_dir / CHECKPOINT
        again = "the same command without --restart" if restart else "the same command"
        if self.checkpoint_step is not None:
            return f"{where}; the last checkpoint, {ckpt} (step {self.checkpoint_step}), is kept: " \
                   f"{again} resumes from it"
        if ckpt.exists():
            return f"{where}; the checkpoint {ckpt} is kept: {again} resumes from it"
        return f"{where}; no checkpoint had been saved (train.ckpt_every={self.cfg.train.ckpt_every}): " \
               "the same command trains the run from the start"

    def _fit(self, stop_after: int | None, restart: bool) -> RunRecord | None:
        t = self.cfg.train
        # the code, commit and versions this run trains with, read now: files
        # edited or commits made while it trains must not be credited with it
        env = environment()
        if restart:
            if self.run_dir is not None and self.rank == 0:
                (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
            resumed = False
        else:
            resumed = self.try_resume()
        if self.run_dir is not None and self.rank == 0:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.run_dir / "config.yaml", self.cfg.to_yaml())
                self.data.split.save(self.run_dir / "split")
            except OSError as e:
                if isinstance(e, WriteError):
                    raise
                raise write_error(self.run_dir, e) from e
        start = self.step
        last_test: dict = {}
        self._t0 = time.perf_counter()
        bar = tqdm(total=t.steps, initial=self.step, disable=not t.progress or self.rank != 0,
                   desc=self.cfg.algo.name, leave=False)
        try:
            while self.step < t.steps:
                if stop_after is not None and self.step - start >= stop_after:
                    return None
                self.train_step()
                bar.update(1)
                ev = (t.eval_every and self.step % t.eval_every == 0) or self.step == t.steps
                # an evaluation step is also a logging step, so every history row has every key
                if ev or self.step % t.log_every == 0:
                    rec = self._log()
                    if ev:
                        last_test = self.evaluate("test")  # the final step's is the summary's: not computed twice
                        rec["test_accuracy"] = last_test["accuracy"]
                        if self.data.val_x is not None:
                            rec["val_accuracy"] = self.evaluate("val")["accuracy"]
                        rec["train_seconds"] = self.train_seconds()  # for time-to-accuracy curves
                    self.history.append(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}")
                if t.ckpt_every and self.step % t.ckpt_every == 0 and self.step < t.steps:
                    self.save_checkpoint()
        finally:
            bar.close()
        self._stop_if_not_finite(self._mean_losses(), check_weights=True)  # nothing diverged is saved
        # the last step is always an evaluation step, so last_test is the final model's
        # unless this call trained nothing (resumed from a checkpoint at the end)
        summary = dict(last_test) or self.evaluate("test")
        summary.update(class_names=list(self.data.class_names), steps=self.step, resumed=resumed,
                       train_seconds=self.train_seconds(), device=str(self.device),
                       n_labeled=len(self.data.labeled), n_unlabeled=len(self.data.unlabeled),
                       algorithm=self.cfg.algo.name, threshold=self.recipe.threshold,
                       negatives=self.recipe.negatives)
        if self.cfg.model.pretrained_path is not None:
            # which weights the run started from, by content: the path alone can name other bytes later
            report = self.student.load_report
            summary["pretrained"] = {"path": str(self.cfg.model.pretrained_path),
                                     "sha256": weights_fingerprint(self.cfg),
                                     "load": report.summary() if report is not None else None}
        if self.data.val_x is not None:
            summary["val"] = {k: v for k, v in self.evaluate("val").items() if k != "confusion"}
        if self.data.test_leaked is not None:
            # the published test split, less the test images that are also train images
            summary["test_leak_free"] = self.evaluate("test_leak_free") | {
                "n_removed": int(self.data.test_leaked.sum()), "n": int((~self.data.test_leaked).sum())}
        record = RunRecord(self.cfg, self.history, summary, environment=env)
        if self.run_dir is not None and self.rank == 0:
            _save_atomic(self.ema.module.state_dict(), self.run_dir / "model.pt")
            record.save(self.run_dir)
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        return record
