"""Self-supervised pretraining of the backbone (BYOL) on the train split's faces,
without labels, for ``model.pretrained_path``.

    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.run import pretrain
    rec = pretrain(PretrainConfig.from_yaml("configs/synthfer_pretrain.yaml"))
    # fine-tune from it: --set model.pretrained_path=<rec.weights>

``config`` (the typed configuration), ``views`` (the two views), ``byol`` (the
networks and the loss), ``probe`` (the kNN probe), ``data`` (the pool, the
bank, the validation faces), ``loop`` (the resumable loop), ``record`` (the
record and its cache key), ``run`` (the cache and its lock). This module
imports none of them: as the package's ``__init__`` it is in every pretraining
key, which must not take in ``run``'s import of the fine-tuning trainer.
"""
