"""An executor for the stock TFX Pusher that publishes a model version atomically.

Use it with `tfx.components.Pusher(..., custom_executor_spec=
executor_spec.ExecutorClassSpec(AtomicPushExecutor))`: the component, its blessing check
and its `pushed_model` output stay standard.
"""
