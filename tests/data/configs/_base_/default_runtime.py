checkpoint_config = dict(interval=1)
log_config = dict(interval=100, hooks=[dict(type="TextLoggerHook")])
custom_hooks = [dict(type="EMAHook", momentum=0.0001, priority="ABOVE_NORMAL")]
workflow = [("train", 1)]
load_from = None
resume_from = None
