"""A TCP proxy on 127.0.0.1 that hands each piece of the server's answers to the client DELAY_MS
after it arrived: what a network round trip to a distant S3 adds to every request, without
limiting how many requests are in flight or how fast bytes flow (bench/run.sh, DELAY_MS).

    python3 bench/delay_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS
"""
import asyncio
import sys


async def main(listen, upstream, delay):
    loop = asyncio.get_running_loop()

    async def forward(reader, writer):
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def delayed(reader, writer):
        # In order, each piece no sooner than DELAY after it came in.
        queue = asyncio.Queue()

        async def send():
            while True:
                when, data = await queue.get()
                if when > loop.time():
                    await asyncio.sleep(when - loop.time())
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((loop.time() + delay, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((loop.time() + delay, None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass

    async def serve(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(forward(client_reader, up_writer), delayed(up_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", listen, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))
