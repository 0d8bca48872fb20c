"""The paper's optimizer (section 5.3): Adam on the warmup schedule, and `compile_transformer`, which
compiles a model with it and the loss of `training.loss`.

Every object here is a registered Keras object, so a saved `.keras` model reloads compiled and
can train further.
"""

import keras
from keras import ops

from keras_transformer.training.loss import MaskedAccuracy, MaskedSparseCrossEntropy


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5) (paper eq. 3),
    times `factor`.

    Linear warmup for `warmup_steps`, then decay with the inverse square root of the
    step. `step` counts from 1 (Keras's optimizer counts from 0). `factor` is a scalar
    variable, 1.0 unless a callback changes it during training (`callbacks.BudgetCooldown`
    takes it to 0 as a time budget runs out); it is not saved: whoever sets it sets it again
    when a run resumes.
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale
        self.factor = keras.Variable(1.0, dtype="float32", trainable=False,
                                     name="learning_rate_factor")

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        return (self.scale * self.d_model ** -0.5
                * ops.minimum(ops.rsqrt(step), step * warmup ** -1.5)) * self.factor

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps,
                "scale": self.scale}


def paper_optimizer(d_model, warmup_steps=4000, scale=1.0, schedule=None):
    """Adam(beta_1=0.9, beta_2=0.98, epsilon=1e-9) on the paper's schedule (`schedule`, a
    `TransformerSchedule`, if given: keep a reference to set its factor)."""
    schedule = schedule or TransformerSchedule(d_model, warmup_steps, scale)
    return keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)


def compile_transformer(model, d_model, warmup_steps=4000, learning_rate_scale=1.0,
                        label_smoothing=0.1, jit_compile="auto", schedule=None):
    """Compile `model` with the paper's loss, schedule and optimizer, and masked accuracy.
    `schedule`: a `TransformerSchedule` to follow instead of the one the arguments describe.

    The optimizer's variables are made here, not inside the first traced training step: made
    there (Keras's default), every Adam slot is a variable created under tf.function, which
    traces the step twice; the `tiny` model's first `fit` call took 8.6 s so and 4.4 s this way.
    """
    model.compile(optimizer=paper_optimizer(d_model, warmup_steps, learning_rate_scale, schedule),
                  loss=MaskedSparseCrossEntropy(label_smoothing),
                  metrics=[MaskedAccuracy()], jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model
