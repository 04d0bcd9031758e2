using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Service;
using ContinualMoE.Deployment;
using Microsoft.AspNetCore.Builder;

namespace ContinualMoE.Tests.Deployment;

/// <summary>The model service on localhost: predictions, learning jobs while predicting, limits and error answers.</summary>
public class ModelServiceTests : IAsyncLifetime
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-svc-" + Guid.NewGuid().ToString("N"));
    private string package = "";
    private string dataRoot = "";
    private WebApplication? app;
    private HttpClient client = new();
    private const string Token = "secret-token";

    public async Task InitializeAsync()
    {
        package = Path.Combine(root, "model");
        dataRoot = Path.Combine(root, "data");
        using (var model = DeployedModel.Create(ModelPackageTests.NewModel("finetune-head"), null))
        {
            model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(dataRoot, "first"), 0, 1)));
            model.Save(package);
        }
        // Two inference workers (model replicas), as serve runs on 2 cores: every test also checks that they answer alike
        // and switch versions together.
        app = ModelService.Build(new ServiceOptions(package, [dataRoot], Token, MaxRequestBytes: 1 << 20, MaxImagesPerRequest: 8,
            Urls: "http://127.0.0.1:0", Workers: 2), DeployedModel.Load(package));
        await app.StartAsync();
        client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
    }

    private static MultipartFormDataContent Images(params (string Name, byte[] Bytes, string Type)[] files)
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, bytes, type) in files)
        {
            var part = new ByteArrayContent(bytes);
            part.Headers.ContentType = new MediaTypeHeaderValue(type);
            form.Add(part, "image", name);
        }
        return form;
    }

    private static byte[] Image(int seed) => File.ReadAllBytes(Directory.GetFiles(Path.Combine(ImageFolderFixture.Data(), "test", $"c{seed % 2}"))[seed / 2]);

    [Fact]
    public async Task PredictsUploadedImagesWithTopKClasses()
    {
        var response = await client.PostAsync("/predict?top_k=2", Images(("a.png", Image(0), "image/png"), ("b.png", Image(1), "image/png")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var predictions = body["predictions"]!.AsArray();
        Assert.Equal(2, predictions.Count);
        Assert.Equal("a.png", (string)predictions[0]!["source"]!);
        var top = predictions[0]!["top"]!.AsArray();
        Assert.Equal(2, top.Count);
        Assert.Contains((string)top[0]!["name"]!, new[] { "c0", "c1" });
        Assert.InRange((double)top[0]!["probability"]! + (double)top[1]!["probability"]!, 0.999, 1.001);   // two learned classes
    }

    [Fact]
    public async Task BadRequestsGetAReason()
    {
        var corrupt = await client.PostAsync("/predict", Images(("broken.png", [1, 2, 3, 4, 5], "image/png")));
        Assert.Equal(HttpStatusCode.BadRequest, corrupt.StatusCode);
        Assert.Contains("broken.png", (string)JsonNode.Parse(await corrupt.Content.ReadAsStringAsync())!["error"]!);

        var json = await client.PostAsync("/predict", JsonContent.Create(new { image = "x" }));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
        var text = await client.PostAsync("/predict", Images(("a.txt", "hello"u8.ToArray(), "text/plain")));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, text.StatusCode);
        var many = await client.PostAsync("/predict", Images(Enumerable.Range(0, 9).Select(i => ($"{i}.png", Image(0), "image/png")).ToArray()));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, many.StatusCode);
        // Over the body limit: Kestrel answers 413 and closes the connection, often before the client finished sending.
        try
        {
            var huge = await client.PostAsync("/predict", Images(("big.png", new byte[2 << 20], "image/png")));
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
        }
        catch (HttpRequestException e) when (e.InnerException is IOException) { }
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);

        var outside = await client.PostAsync("/tasks", JsonContent.Create(new { path = "/etc" }));
        Assert.Equal(HttpStatusCode.BadRequest, outside.StatusCode);
        Assert.Contains("outside the service's data roots", await outside.Content.ReadAsStringAsync());
        var climbing = await client.PostAsync("/tasks", JsonContent.Create(new { path = Path.Combine(dataRoot, "..", "model") }));
        Assert.Equal(HttpStatusCode.BadRequest, climbing.StatusCode);

        var slip = new MemoryStream();
        using (var zip = new ZipArchive(slip, ZipArchiveMode.Create, leaveOpen: true))
        using (var entry = zip.CreateEntry("../../escape.txt").Open()) entry.Write([1]);
        var zipForm = new MultipartFormDataContent { { new ByteArrayContent(slip.ToArray()), "file", "task.zip" } };
        var slipped = await client.PostAsync("/tasks", zipForm);
        Assert.Equal(HttpStatusCode.BadRequest, slipped.StatusCode);
        Assert.Contains("outside the archive", await slipped.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/jobs/nope")).StatusCode);
        using var anonymous = new HttpClient { BaseAddress = client.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/model")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task PredictionsDuringALearningJobAllSucceedAndTheNewVersionIsServedAfterIt()
    {
        ImageFolderFixture.Write(Path.Combine(dataRoot, "second"), 2, 3);
        var started = await client.PostAsync("/tasks", JsonContent.Create(new { path = Path.Combine(dataRoot, "second") }));
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var id = (string)JsonNode.Parse(await started.Content.ReadAsStringAsync())!["id"]!;
        var second = await client.PostAsync("/tasks", JsonContent.Create(new { path = Path.Combine(dataRoot, "second") }));
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);

        var rounds = new List<int[]>();   // versions that answered each round of concurrent requests
        JsonNode job;
        do
        {
            var batch = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => client.PostAsync("/predict", Images(($"{i}.png", Image(i % 4), "image/png")))));
            Assert.All(batch, response => Assert.Equal(HttpStatusCode.OK, response.StatusCode));
            rounds.Add(await Task.WhenAll(batch.Select(async r => (int)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["version"]!)));
            job = JsonNode.Parse(await client.GetStringAsync($"/jobs/{id}"))!;
        } while ((string)job["state"]! == "running");
        Assert.Equal("succeeded", (string)job["state"]!);
        Assert.Contains(1, rounds.SelectMany(r => r));
        // Both workers switch together: once a round saw version 2, no later round is answered by version 1.
        var firstNew = rounds.FindIndex(r => r.Contains(2));
        if (firstNew >= 0) Assert.All(rounds.Skip(firstNew + 1), r => Assert.All(r, v => Assert.Equal(2, v)));
        Assert.Equal(2, (int)job["version"]!);
        var model = JsonNode.Parse(await client.GetStringAsync("/model"))!;
        Assert.Equal(2, (int)model["version"]!);
        Assert.Equal(4, model["classes"]!.AsArray().Count);
        Assert.Equal([1, 2], ModelPackage.Versions(package));
        var after = JsonNode.Parse(await (await client.PostAsync("/predict", Images(("x.png", Image(0), "image/png")))).Content.ReadAsStringAsync())!;
        Assert.Equal(2, (int)after["version"]!);
    }

    [Fact]
    public async Task AnUploadedZipOfClassFoldersIsLearnedAsTheNextTask()
    {
        var folder = ImageFolderFixture.Write(Path.Combine(root, "zipped"), 2, 3);
        var zip = Path.Combine(root, "task.zip");
        ZipFile.CreateFromDirectory(folder, zip);
        var form = new MultipartFormDataContent { { new ByteArrayContent(File.ReadAllBytes(zip)), "file", "task.zip" } };
        var started = await client.PostAsync("/tasks", form);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var id = (string)JsonNode.Parse(await started.Content.ReadAsStringAsync())!["id"]!;
        JsonNode job;
        do
        {
            await Task.Delay(100);
            job = JsonNode.Parse(await client.GetStringAsync($"/jobs/{id}"))!;
        } while ((string)job["state"]! == "running");
        Assert.Equal("succeeded", (string)job["state"]!);
        var model = JsonNode.Parse(await client.GetStringAsync("/model"))!;
        Assert.Equal(["c0", "c1", "c2", "c3"], model["classes"]!.AsArray().Select(c => (string)c!));
        Assert.StartsWith(Path.Combine(Path.GetFullPath(package), "uploads"), (string)model["tasks"]![1]!["source"]!["path"]!);
    }

    [Fact]
    public void ASymbolicLinkInADataRootCannotReachOutsideIt()
    {
        var link = Path.Combine(dataRoot, "escape");
        Directory.CreateSymbolicLink(link, Path.GetTempPath());
        var inside = ImageFolderFixture.Write(Path.Combine(dataRoot, "inside"), 0);
        var roots = new[] { Path.GetFullPath(dataRoot) };
        Assert.Contains("outside the service's data roots", Assert.Throws<ContinualMoEException>(() => ModelService.WithinRoots(link, roots)).Message);
        // A folder reached through the link is outside too, though it is no link itself.
        var beyond = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "cmoe-beyond-" + Guid.NewGuid().ToString("N"))).FullName;
        try { Assert.Throws<ContinualMoEException>(() => ModelService.WithinRoots(Path.Combine(link, Path.GetFileName(beyond)), roots)); }
        finally { Directory.Delete(beyond); }
        Assert.Equal(Path.GetFullPath(inside), ModelService.WithinRoots(inside, roots));
    }

    [Fact]
    public async Task DescribesItselfWithOpenApiAPageAndPlots()
    {
        var openApi = await client.GetStringAsync("/openapi/v1.json");
        foreach (var path in new[] { "/predict", "/tasks", "/jobs/{id}", "/model", "/health" }) Assert.Contains($"\"{path}\"", openApi);
        Assert.Contains("<h1>ContinualMoE model", await client.GetStringAsync("/"));
        var plot = await client.GetAsync("/plots/accuracy.png");
        Assert.Equal("image/png", plot.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/plots/experts.png")).StatusCode);   // finetune-head has no experts
    }

    [Fact]
    public async Task TheBoundedLoadTestAlternatesOfflineAndServicePhasesAndReportsEachRound()
    {
        var images = Directory.GetFiles(Path.Combine(ImageFolderFixture.Data(), "test", "c0")).Take(3).ToList();
        var report = await ContinualMoE.Cli.Commands.LoadTestCommand.Run(client.BaseAddress!, images, requests: 12, concurrency: 4, package, Token,
            CancellationToken.None, rounds: 2);
        Assert.Equal(0, report.Failures);
        Assert.Equal(2, report.Service.Count);
        Assert.Equal(3, report.Offline.Count);   // offline, service, offline, service, offline
        Assert.All(report.Offline, o => Assert.True(o.Predictions == 12 && o.PredictionsPerSecond > 0 && o.CpuCores > 0));
        foreach (var phase in report.Service)
        {
            Assert.Equal(12, phase.LatencyMilliseconds.Count);
            Assert.InRange(phase.P50Milliseconds, 0.001, phase.P99Milliseconds);
            Assert.InRange(phase.MeanBatchImages!.Value, 1, 4);   // 4 concurrent single-image clients
            // The service reports how busy its model was and its CPU time; the clients' CPU time is this process's.
            Assert.InRange(phase.ModelBusy!.Value, 1e-6, 1.01);
            Assert.True(phase.ServiceCpuCores > 0 && phase.LoadGeneratorCpuCores > 0 && phase.CpuMillisecondsPerPrediction > 0);
        }
        Assert.Equal(2, report.Rounds.Count);
        Assert.Equal(report.Service[1].PredictionsPerSecond / ((report.Offline[1].PredictionsPerSecond + report.Offline[2].PredictionsPerSecond) / 2),
            report.Rounds[1].Ratio, 9);
        Assert.InRange(report.Ratio!.Value.Median, report.Ratio.Value.Min, report.Ratio.Value.Max);
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.True((long)health["predicted_images"]! >= 36 && (double)health["compute_seconds"]! > 0);   // 12 warm-up and 2 × 12 timed requests
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        if (app is not null) { await app.StopAsync(); await app.DisposeAsync(); }
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
