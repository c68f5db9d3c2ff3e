"""KFP component: evaluate against baselines and decide the deployment gate."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import config


@dsl.component(base_image=config.IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    gate_summary: Output[Markdown],
    predictions: Output[Dataset],
    max_rmse: float,
    champion_tolerance: float,
    max_training_drift: float,
    model_name: str,
    bucket: str,
    s3_endpoint: str,
) -> bool:
    """Scores the model on the test rows beside the mean and least-squares baselines; returns the gate decision.

    Args:
        model: The trained model folder.
        train: Training rows (the baselines are fit on them).
        test: Test rows.
        metrics: MSE, RMSE, MAE, R² of the model and both baselines.
        report: HTML report with the metrics table and plots.
        gate_summary: The gate decision as Markdown.
        predictions: Test rows with the model's prediction (the deploy step's smoke test uses them).
        max_rmse: Largest acceptable test RMSE.
        champion_tolerance: How much worse than the serving champion's RMSE is acceptable (0.05 = 5 %).
        max_training_drift: Largest population stability index of any feature between these training rows and the
            champion's; 0 = report the drift only.
        model_name: Model name in the store (for the champion record).
        bucket: Bucket of the model store.
        s3_endpoint: S3/MinIO endpoint; empty = MINIO_ENDPOINT from the environment.
    """
    from pathlib import Path

    import pandas as pd

    from boston_model.card import load_linear_model
    from components import config
    from components.common.runtime import fail_with_one_line, object_store, store_settings
    from components.evaluate import core
    from components.evaluate.champion import review_champion

    with fail_with_one_line("evaluate"):
        train_rows, test_rows = pd.read_csv(train.path), pd.read_csv(test.path)
        evaluation = core.evaluate_model_dir(Path(model.path), train_rows, test_rows)
        champion, drift = None, None
        if store_settings(s3_endpoint) is not None:
            # The champion's stored model is re-scored on these test rows (the gate compares like with like), and
            # these training rows are measured against the champion's training distribution.
            champion, drift = review_champion(object_store(s3_endpoint), bucket, model_name,
                                              load_linear_model(Path(model.path)), test_rows, config.TARGET,
                                              train=train_rows)
            # What the gate compared against ("" = no champion): deploy refuses to replace another one.
            predictions.metadata["champion_version"] = champion.version if champion else ""
        else:
            print("no object store configured: the champion check is skipped")
        decision = core.decide_gate(evaluation.metrics, evaluation.baselines["mean"]["rmse"], max_rmse,
                                    champion_tolerance=champion_tolerance, champion=champion,
                                    training_drift=drift, max_training_drift=max_training_drift)
        for key, value in {**core.flat_metrics(evaluation), **core.champion_metrics(champion, drift)}.items():
            metrics.log_metric(key, value)
        if evaluation.savedmodel_max_abs_diff is not None:
            metrics.log_metric("savedmodel_max_abs_diff", evaluation.savedmodel_max_abs_diff)
        metrics.log_metric("gate_passed", 1.0 if decision.passed else 0.0)
        Path(report.path).write_text(core.evaluation_report(evaluation, decision, champion=champion,
                                                            training_drift=drift,
                                                            max_training_drift=max_training_drift))
        Path(gate_summary.path).write_text(core.gate_markdown(evaluation, decision, champion, drift))
        evaluation.predictions.to_csv(predictions.path, index=False)
        m = evaluation.metrics
        print(f"test MSE {m['mse']:.3f} RMSE {m['rmse']:.3f} MAE {m['mae']:.3f} R2 {m['r2']:.3f} | "
              f"least squares MSE {evaluation.baselines['least_squares']['mse']:.3f} | "
              f"mean MSE {evaluation.baselines['mean']['mse']:.3f}")
        print(decision.summary())
        return decision.passed
