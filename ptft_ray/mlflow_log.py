"""Optional MLflow logging of a pretraining run (sweeps use Ray's MLflowLoggerCallback).
Set run.mlflow_uri (file:///path/mlruns or http://host:5000); needs ptft_ray[mlflow]."""
from __future__ import annotations

from .errors import PtftError


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)[:250]
    return out


def log_pretrain(uri: str, name: str, config: dict, history: list[dict], summary: dict) -> str | None:
    if not uri:
        return None
    try:
        import mlflow
    except ImportError:
        raise PtftError("run.mlflow_uri is set but mlflow is not installed: pip install 'ptft_ray[mlflow]'") from None
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(name)
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params(_flat(config))
            for row in history:
                mlflow.log_metrics({k: float(v) for k, v in row.items()
                                    if isinstance(v, (int, float)) and k != "step"}, step=int(row["step"]))
            mlflow.log_metrics({k: float(v) for k, v in summary.items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)})
            return run.info.run_id
    except mlflow.exceptions.MlflowException as e:
        raise PtftError(f"run.mlflow_uri={uri}: MLflow refused the run ({str(e).splitlines()[0][:300]})") from None
