from django.urls import path

from . import apis

urlpatterns = [
    path("me/", apis.RewardsMeApi.as_view(), name="rewards-me"),
    path("me/proof/", apis.RewardsProofApi.as_view(), name="rewards-proof"),
    path("me/claim/", apis.RewardsClaimApi.as_view(), name="rewards-claim"),
    path("epochs/", apis.RewardsEpochListApi.as_view(), name="rewards-epochs"),
    path("epochs/<int:number>/", apis.RewardsEpochDetailApi.as_view(), name="rewards-epoch"),
]
