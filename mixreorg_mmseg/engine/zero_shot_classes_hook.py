"""Give the zero-shot head the classes of the data set it is tested on.

MMEngine hands a data set's ``metainfo`` to the evaluator and the
visualizer, not to the model; a zero-shot head needs the class names to
build its prompts. This hook passes them before every validation and test
run, so one config evaluates any data set (including a folder whose classes
come from its ``classes.txt``) without listing classes twice.
"""

from __future__ import annotations

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..models.decode_heads import set_zero_shot_classes


@HOOKS.register_module()
class ZeroShotClassesHook(Hook):
    """Set the zero-shot head's classes from the evaluated data set.

    Before validation (test), the ``classes`` of
    ``runner.val_loop.dataloader.dataset.metainfo`` (``test_loop``) go to
    :func:`~mixreorg_mmseg.models.decode_heads.set_zero_shot_classes`.
    """

    priority = 'HIGH'

    @staticmethod
    def _apply(runner, loop, key: str) -> None:
        dataset = loop.dataloader.dataset
        classes = getattr(dataset, 'metainfo', {}).get('classes')
        if not classes:
            raise KeyError(
                f'{key}.dataset ({type(dataset).__name__}) has no '
                "metainfo['classes'] to prompt the zero-shot head with"
            )
        head = set_zero_shot_classes(runner.model, classes)
        runner.logger.info(
            f'zero-shot head: {len(classes)} classes from '
            f'{type(dataset).__name__}'
            + (' (class 0 is background)' if head.with_background else '')
        )

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_loop, 'val_dataloader')

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_loop, 'test_dataloader')
