"""Downstream evaluation (``medcl finetune``): how much a pretrained encoder helps on a labelled task.

    run.py      FinetuneConfig's run: data, target, every encoder and baseline, the report
    config.py   FinetuneConfig and its checks
    tasks/      the task registry: a task is a label reader, a head + loss, a linear probe and metrics
    labels.py   the target column: task inference, ID matching, splits, label subsets
    probe.py    the linear probe on frozen features
    full.py     end-to-end fine-tuning as a supervised method of medcl.train.Trainer
    metrics.py  scores through the task, the constant predictor, the summary over repeats
    report.py   the table, the verdict and the label-efficiency picture
"""
