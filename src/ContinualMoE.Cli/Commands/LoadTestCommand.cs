using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using ContinualMoE.Deployment;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe loadtest</c>: a bounded load test of a running service (<c>serve</c>): a fixed number of single-image
/// POST /predict requests from a fixed number of concurrent clients, reporting predictions/s and p50/p99 latency;
/// with --model, the offline <c>predict</c> throughput on the same images in this process, and the ratio.
/// </summary>
internal static class LoadTestCommand
{
    /// <summary>The load test's figures. <see cref="ModelBusy"/>: the fraction of the time the service's model was computing;
    /// <see cref="ServiceCpuCores"/> and <see cref="LoadGeneratorCpuCores"/>: CPU time of the service and of this process
    /// (the clients) per second of the test, in cores: on one machine the load generator's share is CPU the offline
    /// figure does not pay.</summary>
    public sealed record Result(int Requests, int Concurrency, double PredictionsPerSecond, double P50Milliseconds, double P99Milliseconds,
        double? OfflinePredictionsPerSecond, int Failures, double? MeanBatchImages = null, double? ModelBusy = null, double? ServiceCpuCores = null,
        double LoadGeneratorCpuCores = 0, double? OfflineCpuCores = null)
    {
        /// <summary>CPU milliseconds per prediction of the service and its clients together (null without the service's CPU time).</summary>
        public double? ServiceCpuMillisecondsPerPrediction => ServiceCpuCores is double cores ? 1000 * (cores + LoadGeneratorCpuCores) / PredictionsPerSecond : null;
        /// <summary>CPU milliseconds per prediction of offline predict (this process).</summary>
        public double? OfflineCpuMillisecondsPerPrediction => OfflineCpuCores is double cores && OfflinePredictionsPerSecond is double rate ? 1000 * cores / rate : null;
    }

    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "service address", DefaultValueFactory = _ => "http://127.0.0.1:5000" };
        var images = new Option<string>("--images") { Description = "image file or folder to send (cycled)", Required = true };
        var requests = new Option<int>("--requests") { Description = "requests in all (bounded)", DefaultValueFactory = _ => 200 };
        var concurrency = new Option<int>("--concurrency") { Description = "concurrent clients", DefaultValueFactory = _ => 16 };
        var model = new Option<string?>("--model", "-m") { Description = "also measure offline predict throughput of this package on the same images" };
        var token = new Option<string?>("--token") { Description = "bearer token of the service (default: $CMOE_TOKEN)" };
        var command = new Command("loadtest", "bounded load test of a running service against localhost, optionally compared with offline predict")
            { url, images, requests, concurrency, model, token };
        command.SetAction(async (parse, cancellation) =>
        {
            var files = UnlabelledImages.FromPaths([parse.GetValue(images)!]);
            var result = await Run(new Uri(parse.GetValue(url)!), Enumerable.Range(0, files.Count).Select(files.SourceOf).ToList(),
                parse.GetValue(requests), parse.GetValue(concurrency), parse.GetValue(model),
                parse.GetValue(token) ?? Environment.GetEnvironmentVariable("CMOE_TOKEN"), cancellation);
            AnsiConsole.MarkupLine($"{result.Requests} requests, {result.Concurrency} concurrent: [bold]{result.PredictionsPerSecond:F1}[/] predictions/s, " +
                                   $"p50 {result.P50Milliseconds:F0} ms, p99 {result.P99Milliseconds:F0} ms, {result.Failures} failed" +
                                   (result.MeanBatchImages is double mean ? $", {mean:F1} images per batch" : ""));
            AnsiConsole.MarkupLine((result.ModelBusy is double busy ? $"model busy {busy:P0} of the time; " : "") + "CPU " +
                                   (result.ServiceCpuCores is double cores ? $"of the service {cores:F2} cores, " : "") +
                                   $"of the load generator (the clients, this process) {result.LoadGeneratorCpuCores:F2} cores, of {Environment.ProcessorCount}");
            if (result.OfflinePredictionsPerSecond is double offline)
            {
                AnsiConsole.MarkupLine($"offline predict on the same images: {offline:F1} predictions/s; service/offline = [bold]{result.PredictionsPerSecond / offline:P0}[/]");
                // CPU time per prediction depends less than throughput on what else the machine runs.
                if (result.ServiceCpuMillisecondsPerPrediction is double served && result.OfflineCpuMillisecondsPerPrediction is double alone)
                    AnsiConsole.MarkupLine($"CPU per prediction: service and clients {served:F1} ms, offline {alone:F1} ms ({result.OfflineCpuCores:F2} cores)");
            }
            return result.Failures == 0 ? 0 : 1;
        });
        return command;
    }

    public static async Task<Result> Run(Uri url, IReadOnlyList<string> imageFiles, int requests, int concurrency, string? modelFolder, string? token,
        CancellationToken cancellation)
    {
        if (requests < 1 || concurrency < 1) throw new ContinualMoEException("--requests and --concurrency must be at least 1");
        var payloads = imageFiles.Select(f => (Name: Path.GetFileName(f), Bytes: File.ReadAllBytes(f), ContentType: ImageContentType(f))).ToList();
        using var client = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(5) };
        if (token is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var latencies = new double[requests];
        var failures = 0;
        async Task Load(int count, double[]? latency)
        {
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, Math.Min(concurrency, count)).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count)
                {
                    var (name, bytes, contentType) = payloads[i % payloads.Count];
                    using var form = new MultipartFormDataContent();
                    var part = new ByteArrayContent(bytes);
                    part.Headers.ContentType = new MediaTypeHeaderValue(contentType);
                    form.Add(part, "image", name);
                    var start = Stopwatch.GetTimestamp();
                    try
                    {
                        using var response = await client.PostAsync("/predict", form, cancellation);
                        if (!response.IsSuccessStatusCode && latency is not null) Interlocked.Increment(ref failures);
                    }
                    catch (HttpRequestException) when (latency is not null) { Interlocked.Increment(ref failures); }
                    if (latency is not null) latency[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            }));
        }
        // One untimed round per client first, as the offline figure below predicts one image untimed: both then measure
        // warm code (JIT, connections, libtorch's first allocations), not start-up.
        await Load(Math.Min(concurrency, requests), null);
        var before = await Counts(client, cancellation);
        var cpuBefore = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        await Load(requests, latencies);
        var seconds = clock.Elapsed.TotalSeconds;
        var loadGeneratorCores = (Environment.CpuUsage.TotalTime - cpuBefore).TotalSeconds / seconds;
        var after = await Counts(client, cancellation);
        double? meanBatch = null, busy = null, serviceCores = null;
        if (before is { } b && after is { } a && a.Batches > b.Batches)
        {
            meanBatch = (double)(a.Images - b.Images) / (a.Batches - b.Batches);
            if (a.ComputeSeconds is { } computeAfter && b.ComputeSeconds is { } computeBefore) busy = (computeAfter - computeBefore) / seconds;
            if (a.CpuSeconds is { } cpuAfter && b.CpuSeconds is { } cpuBeforeService) serviceCores = (cpuAfter - cpuBeforeService) / seconds;
        }
        Array.Sort(latencies);
        double Percentile(double q) => latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(q * latencies.Length) - 1)];

        double? offline = null, offlineCores = null;
        if (modelFolder is not null)
        {
            // The same image files, as many predictions, as `predict` makes them: decoded by the data loader, batched by
            // DeployedModel.Predict.
            ComputeDevice.ConfigureThreads();
            using var model = DeployedModel.Load(modelFolder);
            var all = UnlabelledImages.FromPaths(Enumerable.Range(0, requests).Select(i => imageFiles[i % imageFiles.Count]));
            model.Predict(UnlabelledImages.FromPaths(imageFiles.Take(1)));
            var offlineCpu = Environment.CpuUsage.TotalTime;
            var offlineClock = Stopwatch.StartNew();
            model.Predict(all, cancellation: cancellation);
            offline = requests / offlineClock.Elapsed.TotalSeconds;
            offlineCores = (Environment.CpuUsage.TotalTime - offlineCpu).TotalSeconds / offlineClock.Elapsed.TotalSeconds;
        }
        return new Result(requests, concurrency, requests / seconds, Percentile(0.5), Percentile(0.99), offline, failures, meanBatch, busy, serviceCores,
            loadGeneratorCores, offlineCores);
    }

    /// <summary>The upload's content type from the file's extension (image/jpeg for .jpg).</summary>
    private static string ImageContentType(string file)
    {
        var extension = Path.GetExtension(file).TrimStart('.').ToLowerInvariant();
        return "image/" + (extension is "jpg" ? "jpeg" : extension);
    }

    /// <summary>The service's counters (GET /health), or null when it does not report them.</summary>
    private static async Task<(long Batches, long Images, double? ComputeSeconds, double? CpuSeconds)?> Counts(HttpClient client, CancellationToken cancellation)
    {
        try
        {
            var health = System.Text.Json.Nodes.JsonNode.Parse(await client.GetStringAsync("/health", cancellation));
            return health?["batches"] is { } batches && health["predicted_images"] is { } images
                ? ((long)batches, (long)images, (double?)health["compute_seconds"], (double?)health["cpu_seconds"])
                : null;
        }
        catch (HttpRequestException) { return null; }
    }
}
