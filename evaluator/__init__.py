"""Image intake, RQ jobs, the sandbox runner, metrics, accelerator quota."""
