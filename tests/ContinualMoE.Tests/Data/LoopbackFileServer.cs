using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ContinualMoE.Tests.Data;

/// <summary>A tiny HTTP/1.1 server on 127.0.0.1 serving in-memory files (GET only, one request per connection).</summary>
internal sealed class LoopbackFileServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Thread _thread;
    private volatile bool _stopping;

    public LoopbackFileServer()
    {
        _listener.Start();
        _thread = new Thread(Serve) { IsBackground = true };
        _thread.Start();
    }

    public Dictionary<string, byte[]> Files { get; } = new();
    public int Requests;
    public string BaseUrl => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/files/";

    private void Serve()
    {
        while (!_stopping)
        {
            TcpClient client;
            try { client = _listener.AcceptTcpClient(); }
            catch (SocketException) { return; }
            catch (ObjectDisposedException) { return; }
            using (client)
            {
                try { Handle(client.GetStream()); }
                catch (IOException) { }
            }
        }
    }

    private void Handle(NetworkStream stream)
    {
        var header = new StringBuilder();
        while (!header.ToString().EndsWith("\r\n\r\n"))
        {
            var b = stream.ReadByte();
            if (b < 0) return;
            header.Append((char)b);
        }
        Interlocked.Increment(ref Requests);
        var path = header.ToString().Split(' ')[1];
        var name = path.StartsWith("/files/") ? path["/files/".Length..] : "";
        byte[] body;
        string status;
        lock (Files) (status, body) = Files.TryGetValue(name, out var content) ? ("200 OK", content) : ("404 Not Found", []);
        var head = $"HTTP/1.1 {status}\r\nContent-Length: {body.Length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
        stream.Write(Encoding.ASCII.GetBytes(head));
        stream.Write(body);
    }

    public void Dispose()
    {
        _stopping = true;
        _listener.Stop();
        _thread.Join(TimeSpan.FromSeconds(5));
    }
}
