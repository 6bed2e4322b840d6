"""msgraph-sdk (Python) against the simulated Graph: users across pages with the SDK's PageIterator, a
`$batch` with BatchRequestContent, and an Authorization_RequestDenied surfacing as the SDK's ODataError.
Only the base URL, the allowed host and the CA differ from a real deployment. Prints one result line for
crates/sim/tests/clients.rs."""

import asyncio
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import AUTOMATION, AUTOMATION_SECRET, APP, GRAPH_DEFAULT, MEGAN, Sim, emit, require  # noqa: E402

require(["msgraph", "msgraph_core", "kiota_authentication_azure", "azure.identity", "httpx"])
import httpx  # noqa: E402
from azure.identity import ClientSecretCredential, DeviceCodeCredential  # noqa: E402
from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: E402
from kiota_authentication_azure.azure_identity_authentication_provider import (  # noqa: E402
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient  # noqa: E402
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: E402
from msgraph.generated.models.user_collection_response import UserCollectionResponse  # noqa: E402
from msgraph.generated.users.users_request_builder import UsersRequestBuilder  # noqa: E402
from msgraph_core import GraphClientFactory  # noqa: E402
from msgraph_core.requests.batch_request_content import BatchRequestContent  # noqa: E402
from msgraph_core.requests.batch_request_item import BatchRequestItem  # noqa: E402
from msgraph_core.tasks.page_iterator import PageIterator  # noqa: E402

sim = Sim()
host = sim.host.split(":")[0]


def graph_client(credential):
    """A GraphServiceClient whose base URL, allowed host and trusted CA are the simulator's."""
    provider = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_DEFAULT], allowed_hosts=[host])
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=sim.ready["ca_cert"])))
    adapter = GraphRequestAdapter(provider, client=http)
    adapter.base_url = f"{sim.base}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


async def main():
    out = {"event": "result", "library": "msgraph-sdk"}
    app = ClientSecretCredential(sim.tenant("lakeside"), AUTOMATION, AUTOMATION_SECRET, authority=sim.base,
                                 disable_instance_discovery=True)
    client = graph_client(app)

    # Users across pages, five at a time, with the SDK's page iterator following @odata.nextLink.
    config = RequestConfiguration(query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        top=5, select=["id", "displayName", "userPrincipalName"]))
    first = await client.users.get(request_configuration=config)
    pages = {"count": 1}
    ids = []

    def collect(user):
        ids.append(user.id)
        return True

    iterator = PageIterator(first, client.request_adapter)
    original_next = iterator.next

    async def counting_next():
        page = await original_next()
        if page is not None:
            pages["count"] += 1
        return page

    iterator.next = counting_next
    await iterator.iterate(collect)
    out["users"] = {"total": len(ids), "unique": len(set(ids)), "pages": pages["count"],
                    "first_page_size": len(first.value), "first_has_next": bool(first.odata_next_link)}

    # A $batch of three requests, one of which fails on its own. msgraph-core keeps each item's absolute URL
    # (msgraph-sdk-python-core issue 1116), which Graph answers per item with 400 "Resource not found for
    # the segment"; the simulator does the same, so the items are first sent as the SDK builds them, then
    # with the workaround (URLs made relative to the API version).
    def items():
        return [
            BatchRequestItem(request_information=client.organization.to_get_request_information()),
            BatchRequestItem(request_information=client.subscribed_skus.to_get_request_information()),
            BatchRequestItem(request_information=client.users.by_user_id(
                "00000000-0000-4000-8000-000000000000").to_get_request_information()),
        ]

    async def send(batch_items):
        batch = BatchRequestContent()
        for item in batch_items:
            batch.add_request(None, item)
        return await client.batch.post(batch_request_content=batch)

    as_built = items()
    absolute = await send(as_built)
    relative = items()
    prefix = client.request_adapter.base_url.rstrip("/")
    for item in relative:
        if item.url.startswith(prefix):
            item.url = item.url[len(prefix):]
    result = await send(relative)
    statuses = result.get_response_status_codes()
    out["batch"] = {
        "absolute_urls": as_built[0].url.startswith("https://"),
        "absolute_statuses": sorted(absolute.get_response_status_codes().values()),
        "statuses": sorted(statuses.values()),
        "ids_match": sorted(statuses.keys()) == sorted(i.id for i in relative),
        "organization_status": statuses.get(relative[0].id),
        "missing_status": statuses.get(relative[2].id),
    }

    # Margie's Travel consented without Policy.Read.All: reading its Conditional Access policies as Megan is
    # denied, and the SDK raises its ODataError with Graph's code.
    megan = DeviceCodeCredential(
        client_id=APP, tenant_id=sim.tenant("margie"), authority=sim.base, disable_instance_discovery=True,
        prompt_callback=lambda uri, code, expires: emit({"event": "device_code", "user_code": code, "upn": MEGAN}))
    megan.authenticate(scopes=[GRAPH_DEFAULT])
    try:
        await graph_client(megan).identity.conditional_access.policies.get()
        out["denied"] = {"raised": None}
    except ODataError as e:
        out["denied"] = {
            "raised": type(e).__name__,
            "status": e.response_status_code,
            "code": e.error.code if e.error else None,
            "message": e.error.message if e.error else None,
        }
    users = await graph_client(megan).users.get()
    out["margie_users"] = len(users.value) if isinstance(users, UserCollectionResponse) else None
    emit(out)


asyncio.run(main())
