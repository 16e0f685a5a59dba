"""sseclient-py over requests, used as its README shows: requests.get(url, stream=True),
sseclient.SSEClient(response), then every event that .events() yields.

usage: python libs_sseclient_py.py BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]
(see client_libs.py)

SSEClient iterates the response, which reads 128-byte blocks through urllib3: on a body
delimited by the close, a block is handed over only when it is full, so events wait for
later bytes; a chunked body hands over each chunk as it comes.
"""

import requests
import sseclient

from client_libs import main, versions


def listen(run):
    headers = {"Accept": "text/event-stream"}
    if run.last_event_id:
        headers["Last-Event-ID"] = run.last_event_id
    response = requests.get(run.url, stream=True, headers=headers)
    response.raise_for_status()
    client = sseclient.SSEClient(response)
    for event in client.events():
        run.record(event.event, event.data, event.id)


if __name__ == "__main__":
    main(versions("sseclient-py", "requests"), listen)
