"""``/v1/campaigns/{id}/…``: try a campaign, schedule a draft, pause and resume a running one.

Their error answers are documented by ``web.openapi`` like every route's.

Kept beside ``web.api`` (which creates, reads and cancels campaigns) so the
campaign's life after creation reads in one place.
"""

from __future__ import annotations

from fastapi import APIRouter

from notifier.schemas import CampaignOut, CampaignTestIn
from notifier.service import Notifier
from notifier.web.api import ResourceId


def router(engine: Notifier) -> APIRouter:
    api = APIRouter(prefix="/v1/campaigns")

    @api.post("/{campaign_id}/test")
    async def test_campaign(campaign_id: ResourceId, request: CampaignTestIn) -> dict[str, object]:
        """Send the real campaign mail, subject marked ``[TEST]``, to the given addresses now.

        Nothing is queued or counted; works for a draft as for a running campaign.
        """
        sent = await engine.send_campaign_test(campaign_id, request.to, request.locale)
        return {"sent": sent}

    @api.post("/{campaign_id}/schedule", response_model=CampaignOut)
    def schedule_campaign(campaign_id: ResourceId) -> CampaignOut:
        """Schedule a draft at its ``send_at``, by its ``cron``, or now."""
        return engine.newsletters.schedule(campaign_id)

    @api.post("/{campaign_id}/pause", response_model=CampaignOut)
    def pause_campaign(campaign_id: ResourceId) -> CampaignOut:
        """Stop sending: no fan-out, unsent messages wait until it is resumed."""
        return engine.newsletters.pause(campaign_id)

    @api.post("/{campaign_id}/resume", response_model=CampaignOut)
    def resume_campaign(campaign_id: ResourceId) -> CampaignOut:
        """Go on sending a paused campaign, from the next send-window opening."""
        return engine.newsletters.resume(campaign_id)

    return api
