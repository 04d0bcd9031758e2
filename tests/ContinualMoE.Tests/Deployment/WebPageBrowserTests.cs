using System.Diagnostics;
using ContinualMoE.Cli.Service;
using ContinualMoE.Deployment;
using Microsoft.AspNetCore.Builder;
using SkiaSharp;

namespace ContinualMoE.Tests.Deployment;

/// <summary>
/// The service's web page in a real headless browser (Debian's chromium, which scripts/cmoe test installs): the page's
/// scripts fill in the model summary and the task table from the API, a screenshot shows the plots, and (driven through
/// the DevTools protocol) an image chosen in the file input and a click on Predict show the service's prediction, and a
/// folder typed in and a click on Learn run a learning job to its end.
/// </summary>
public class WebPageBrowserTests : IAsyncLifetime
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-web-" + Guid.NewGuid().ToString("N"));
    private WebApplication? app;
    private string url = "";
    private string package = "";

    public async Task InitializeAsync()
    {
        package = Path.Combine(root, "model");
        using (var model = DeployedModel.Create(ModelPackageTests.NewModel(), null))
        {
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "data", "first"), 0, 1)));
            model.Save(package);
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "data", "second"), 2, 3)));
            model.Save(package);
        }
        app = ModelService.Build(new ServiceOptions(package, [Path.Combine(root, "data")], Urls: "http://127.0.0.1:0"), DeployedModel.Load(package));
        await app.StartAsync();
        url = app.Urls.First() + "/";
    }

    private static string Chromium() =>
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("Debian's chromium is missing: apt-get install chromium (scripts/cmoe test installs it)");

    private static string Browse(params string[] arguments)
    {
        var start = new ProcessStartInfo(Chromium()) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=10000", "--window-size=1200,1400" }.Concat(arguments))
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2))) { process.Kill(entireProcessTree: true); throw new TimeoutException("chromium did not finish in 2 minutes"); }
        return output.Result;
    }

    [Fact]
    public void ThePageShowsTheModelItsTasksAndTheAccuracyMatrix()
    {
        var dom = Browse("--dump-dom", url);
        Assert.Contains("(smope, version 2, 4 classes, 2 tasks)", dom);
        Assert.Contains("<td>c0, c1</td>", dom);
        Assert.Contains("<td>c2, c3</td>", dom);
        Assert.Equal(2, dom.Split("src=\"blob:").Length - 1);   // the accuracy and expert-utilisation plots were fetched and shown

        var shot = Path.Combine(root, "page.png");
        Browse($"--screenshot={shot}", url);
        using var bitmap = SKBitmap.Decode(shot);
        Assert.Equal(1200, bitmap.Width);
        // The heatmap's viridis cells are the only strongly coloured pixels on the page (text is black on white).
        var coloured = 0;
        for (var y = 0; y < bitmap.Height; y += 2)
            for (var x = 0; x < bitmap.Width; x += 2)
            {
                var p = bitmap.GetPixel(x, y);
                if (Math.Max(p.Red, Math.Max(p.Green, p.Blue)) - Math.Min(p.Red, Math.Min(p.Green, p.Blue)) > 80) coloured++;
            }
        Assert.True(coloured > 2000, $"only {coloured} coloured pixels: the accuracy matrix plot is not on the page");
    }

    [Fact]
    public async Task UploadingAnImageShowsThePredictionAndLearningAFolderShowsTheJobToItsEnd()
    {
        var image = Directory.GetFiles(Path.Combine(ImageFolderFixture.Data(), "test", "c1")).Order().First();
        // What the API answers for this image, to compare with what the page shows.
        using var client = new HttpClient { BaseAddress = new Uri(url) };
        using var form = new MultipartFormDataContent { { new ByteArrayContent(File.ReadAllBytes(image)), "image", Path.GetFileName(image) } };
        var answer = System.Text.Json.Nodes.JsonNode.Parse(await (await client.PostAsync("/predict?top_k=3", form)).Content.ReadAsStringAsync())!["predictions"]![0]!;
        var top = answer["top"]![0]!;
        var firstSite = answer["routing"]![0]!;

        await using var browser = await DevTools.Start(Chromium(), Path.Combine(root, "profile"));
        await browser.Send("Page.navigate", new { url });
        await browser.WaitFor("document.querySelectorAll('#tasks tbody tr').length === 2");
        var document = await browser.Send("DOM.getDocument", new { });
        var input = await browser.Send("DOM.querySelector", new { nodeId = (int)document["root"]!["nodeId"]!, selector = "#image" });
        await browser.Send("DOM.setFileInputFiles", new { files = new[] { image }, nodeId = (int)input["nodeId"]! });
        await browser.Click("#predict");
        await browser.WaitFor("document.querySelector('#predtable') !== null");
        var shown = (string)(await browser.Evaluate("document.getElementById('prediction').innerText"))!;
        Assert.Contains($"{(string)top["name"]!}\t{100 * (double)top["probability"]!:F1}%", shown);
        Assert.Contains($"{(string)firstSite["site"]!}: {(int)firstSite["experts"]![0]!} (", shown);   // SMoPE's chosen experts

        var shot = Path.Combine(root, "upload.png");
        File.WriteAllBytes(shot, Convert.FromBase64String((string)(await browser.Send("Page.captureScreenshot", new { format = "png" }))["data"]!));
        using (var bitmap = SKBitmap.Decode(shot)) Assert.Equal(1200, bitmap.Width);

        var third = ImageFolderFixture.Write(Path.Combine(root, "data", "third"), 4, 5);
        await browser.Click("#path");
        await browser.Send("Input.insertText", new { text = third });
        await browser.Click("#learn");
        await browser.WaitFor("document.getElementById('jobtext').textContent.startsWith('succeeded')", TimeSpan.FromMinutes(3));
        await browser.WaitFor("document.getElementById('summary').textContent.includes('version 3, 6 classes, 3 tasks')");
        Assert.Equal(1.0, (double)(await browser.Evaluate("document.getElementById('jobbar').value"))!);
        Assert.Equal([1, 2, 3], ModelPackage.Versions(package));
    }

    public async Task DisposeAsync()
    {
        if (app is not null) { await app.StopAsync(); await app.DisposeAsync(); }
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}

/// <summary>Headless chromium driven over the DevTools protocol (a page target's WebSocket; commands by id, events ignored).</summary>
internal sealed class DevTools : IAsyncDisposable
{
    private readonly Process chromium;
    private readonly System.Net.WebSockets.ClientWebSocket socket = new();
    private int nextId;

    private DevTools(Process chromium) => this.chromium = chromium;

    public static async Task<DevTools> Start(string chromiumPath, string profile)
    {
        var start = new ProcessStartInfo(chromiumPath) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-port=0",
                     $"--user-data-dir={profile}", "--window-size=1200,1400", "about:blank" })
            start.ArgumentList.Add(a);
        var process = Process.Start(start)!;
        var tools = new DevTools(process);
        _ = process.StandardOutput.ReadToEndAsync();
        // chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr once it listens.
        string? line;
        var reading = Task.Run(async () =>
        {
            while ((line = await process.StandardError.ReadLineAsync()) is not null)
                if (line.StartsWith("DevTools listening on ")) return new Uri(line["DevTools listening on ".Length..].Trim());
            throw new InvalidOperationException("chromium exited without a DevTools endpoint");
        });
        if (await Task.WhenAny(reading, Task.Delay(TimeSpan.FromMinutes(1))) != reading) throw new TimeoutException("chromium did not start its DevTools endpoint in a minute");
        var browser = await reading;
        _ = Task.Run(async () => { while (await process.StandardError.ReadLineAsync() is not null) { } });
        using var http = new HttpClient();
        var targets = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://{browser.Authority}/json/list"))!.AsArray();
        var page = targets.First(t => (string)t!["type"]! == "page")!;
        await tools.socket.ConnectAsync(new Uri((string)page["webSocketDebuggerUrl"]!), CancellationToken.None);
        return tools;
    }

    /// <summary>Sends a command and returns its result; a protocol error throws.</summary>
    public async Task<System.Text.Json.Nodes.JsonNode> Send(string method, object parameters)
    {
        var id = ++nextId;
        var message = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters });
        await socket.SendAsync(message, System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[1 << 16];
        while (true)
        {
            using var received = new MemoryStream();
            System.Net.WebSockets.WebSocketReceiveResult part;
            do
            {
                part = await socket.ReceiveAsync(buffer, CancellationToken.None);
                received.Write(buffer, 0, part.Count);
            } while (!part.EndOfMessage);
            var reply = System.Text.Json.Nodes.JsonNode.Parse(received.ToArray())!;
            if (reply["id"] is null || (int)reply["id"]! != id) continue;   // an event, or an older reply
            if (reply["error"] is { } error) throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
            return reply["result"]!;
        }
    }

    public async Task<System.Text.Json.Nodes.JsonNode?> Evaluate(string expression)
    {
        var result = await Send("Runtime.evaluate", new { expression, returnByValue = true, awaitPromise = true });
        if (result["exceptionDetails"] is { } e) throw new InvalidOperationException($"{expression}: {e.ToJsonString()}");
        return result["result"]!["value"];
    }

    /// <summary>Polls <paramref name="condition"/> (a JavaScript expression) until it is true.</summary>
    public async Task WaitFor(string condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (await Evaluate(condition) is not { } value || value.GetValueKind() != System.Text.Json.JsonValueKind.True)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"'{condition}' not true after {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds} s; page text: {await Evaluate("document.body.innerText")}");
            await Task.Delay(100);
        }
    }

    /// <summary>A left click (mouse pressed and released) at the centre of the element <paramref name="selector"/>.</summary>
    public async Task Click(string selector)
    {
        var centre = (await Evaluate($"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"))!.AsArray();
        foreach (var type in new[] { "mousePressed", "mouseReleased" })
            await Send("Input.dispatchMouseEvent", new { type, x = (double)centre[0]!, y = (double)centre[1]!, button = "left", clickCount = 1 });
    }

    public async ValueTask DisposeAsync()
    {
        socket.Dispose();
        if (!chromium.HasExited) { chromium.Kill(entireProcessTree: true); await chromium.WaitForExitAsync(); }
        chromium.Dispose();
    }
}
