from __future__ import annotations

from django.urls import path

from strategies import apis

urlpatterns = [
    path("strategy-configs", apis.StrategyConfigListCreateApi.as_view(), name="strategy-configs"),
    path("strategy-configs/<str:config>/diff", apis.StrategyDiffApi.as_view(), name="strategy-config-diff"),
    path("strategy-configs/<str:config>/rollback", apis.StrategyRollbackApi.as_view(), name="strategy-config-rollback"),
    path(
        "strategy-configs/<str:config>/versions/<str:number>",
        apis.StrategyVersionDetailApi.as_view(),
        name="strategy-version",
    ),
    path(
        "strategy-configs/<str:config>/versions/<str:number>/assign",
        apis.StrategyAssignApi.as_view(),
        name="strategy-version-assign",
    ),
    path(
        "strategy-configs/<str:config>/versions/<str:number>/tune",
        apis.StrategyTuneApi.as_view(),
        name="strategy-version-tune",
    ),
    path("experiments", apis.ExperimentListStartApi.as_view(), name="experiments"),
    path("experiments/<str:experiment_id>", apis.ExperimentDetailApi.as_view(), name="experiment"),
    path("experiments/<str:experiment_id>/stop", apis.ExperimentStopApi.as_view(), name="experiment-stop"),
    path("experiments/<str:experiment_id>/promote", apis.ExperimentPromoteApi.as_view(), name="experiment-promote"),
    path("experiments/<str:experiment_id>/reject", apis.ExperimentRejectApi.as_view(), name="experiment-reject"),
]
