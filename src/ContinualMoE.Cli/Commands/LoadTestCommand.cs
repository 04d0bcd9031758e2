using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Deployment;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe loadtest</c>: a bounded load test of a running service (<c>serve</c>): phases of a fixed number of
/// single-image POST /predict requests from a fixed number of concurrent clients, reporting predictions/s and p50/p99
/// latency. With --model, offline <c>predict</c> phases on the same images in this process alternate with the service
/// phases (offline, service, offline, ..., offline), and each round's ratio is taken against the offline phases around
/// it (<see cref="LoadTestReport"/>).
/// </summary>
internal static class LoadTestCommand
{
    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "service address", DefaultValueFactory = _ => "http://127.0.0.1:5000" };
        var images = new Option<string>("--images") { Description = "image file or folder to send (cycled)", Required = true };
        var requests = new Option<int>("--requests") { Description = "requests per service phase (bounded); offline phases predict as many images", DefaultValueFactory = _ => 200 };
        var concurrency = new Option<int>("--concurrency") { Description = "concurrent clients", DefaultValueFactory = _ => 16 };
        var model = new Option<string?>("--model", "-m") { Description = "also measure offline predict throughput of this package on the same images, in phases alternating with the service's" };
        var rounds = new Option<int>("--rounds") { Description = "service phases (with --model each between two offline phases)", DefaultValueFactory = _ => 3 };
        var token = new Option<string?>("--token") { Description = "bearer token of the service (default: $CMOE_TOKEN)" };
        var command = new Command("loadtest", "bounded load test of a running service against localhost, optionally interleaved with offline predict on the same images")
            { url, images, requests, concurrency, model, rounds, token };
        command.SetAction(async (parse, cancellation) =>
        {
            var files = UnlabelledImages.FromPaths([parse.GetValue(images)!]);
            var report = await Run(new Uri(parse.GetValue(url)!), Enumerable.Range(0, files.Count).Select(files.SourceOf).ToList(),
                parse.GetValue(requests), parse.GetValue(concurrency), parse.GetValue(model),
                parse.GetValue(token) ?? Environment.GetEnvironmentVariable("CMOE_TOKEN"), cancellation, parse.GetValue(rounds));
            Print(report);
            return report.Failures == 0 ? 0 : 1;
        });
        return command;
    }

    private static void Print(LoadTestReport report)
    {
        static string F(double? value, string format) => value is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";
        var phases = new Table().AddColumns("phase", "predictions/s", "p50 (ms)", "p99 (ms)", "images per batch", "model busy",
            "CPU cores (service + clients)", "CPU ms per prediction");
        for (var i = 0; i < Math.Max(report.Service.Count, report.Offline.Count); i++)
        {
            if (i < report.Offline.Count)
            {
                var o = report.Offline[i];
                phases.AddRow($"offline {i + 1}", F(o.PredictionsPerSecond, "F1"), "", "", "", "", F(o.CpuCores, "F2"), F(o.CpuMillisecondsPerPrediction, "F1"));
            }
            if (i < report.Service.Count)
            {
                var s = report.Service[i];
                phases.AddRow($"service {i + 1}", F(s.PredictionsPerSecond, "F1"), F(s.P50Milliseconds, "F0"), F(s.P99Milliseconds, "F0"),
                    F(s.MeanBatchImages, "F1"), s.ModelBusy is double busy ? busy.ToString("P0", CultureInfo.InvariantCulture) : "-",
                    $"{F(s.ServiceCpuCores, "F2")} + {F(s.LoadGeneratorCpuCores, "F2")}", F(s.CpuMillisecondsPerPrediction, "F1"));
            }
        }
        AnsiConsole.Write(phases);
        var requests = report.Service.Sum(p => p.Requests);
        AnsiConsole.MarkupLine($"service: {requests} requests in {report.Service.Count} phases, {report.Concurrency} concurrent: " +
                               $"[bold]{report.PredictionsPerSecond:F1}[/] predictions/s, p50 {report.P50Milliseconds:F0} ms, p99 {report.P99Milliseconds:F0} ms, " +
                               $"{report.Failures} failed (of {Environment.ProcessorCount} cores)");
        if (report.Ratio is not { } ratio) return;
        var rounds = new Table().AddColumns("round", "service pred/s", "offline before", "offline after", "service / offline");
        foreach (var r in report.Rounds)
            rounds.AddRow(r.Round.ToString(CultureInfo.InvariantCulture), F(r.Service, "F1"), F(r.OfflineBefore, "F1"), F(r.OfflineAfter, "F1"),
                r.Ratio.ToString("P0", CultureInfo.InvariantCulture));
        AnsiConsole.Write(rounds);
        AnsiConsole.MarkupLine($"offline predict on the same images: {report.OfflinePredictionsPerSecond:F1} predictions/s; " +
                               $"service/offline median [bold]{ratio.Median:P0}[/] over {ratio.Count} rounds (range {ratio.Min:P0} to {ratio.Max:P0})");
    }

    public static async Task<LoadTestReport> Run(Uri url, IReadOnlyList<string> imageFiles, int requests, int concurrency, string? modelFolder, string? token,
        CancellationToken cancellation, int rounds = 1)
    {
        if (requests < 1 || concurrency < 1 || rounds < 1) throw new ContinualMoEException("--requests, --concurrency and --rounds must be at least 1");
        var payloads = imageFiles.Select(f => (Name: Path.GetFileName(f), Bytes: File.ReadAllBytes(f), ContentType: ImageContentType(f))).ToList();
        using var client = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(5) };
        if (token is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
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

        async Task<ServicePhase> ServicePhase()
        {
            failures = 0;
            var latencies = new double[requests];
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
                if (a.ComputeSeconds is { } computeAfter && b.ComputeSeconds is { } computeBefore) busy = (computeAfter - computeBefore) / seconds / a.Workers;
                if (a.CpuSeconds is { } cpuAfter && b.CpuSeconds is { } cpuBeforeService) serviceCores = (cpuAfter - cpuBeforeService) / seconds;
            }
            return new ServicePhase(requests, seconds, latencies, failures, meanBatch, busy, serviceCores, loadGeneratorCores);
        }

        // The same image files, as many predictions, as `predict` makes them: decoded by the data loader, batched by
        // DeployedModel.Predict.
        DeployedModel? model = null;
        UnlabelledImages? all = null;
        OfflinePhase OfflinePhase()
        {
            var cpu = Environment.CpuUsage.TotalTime;
            var clock = Stopwatch.StartNew();
            model!.Predict(all!, cancellation: cancellation);
            var seconds = clock.Elapsed.TotalSeconds;
            return new OfflinePhase(requests, seconds, (Environment.CpuUsage.TotalTime - cpu).TotalSeconds / seconds);
        }

        try
        {
            if (modelFolder is not null)
            {
                ComputeDevice.ConfigureThreads();
                model = DeployedModel.Load(modelFolder);
                all = UnlabelledImages.FromPaths(Enumerable.Range(0, requests).Select(i => imageFiles[i % imageFiles.Count]));
            }
            // One untimed phase of each side first: every timed phase then measures warm code, not start-up (a service
            // just started spends a third of its CPU for seconds in the tiered JIT recompiling its hot paths, per perf).
            await Load(requests, null);
            model?.Predict(all!, cancellation: cancellation);
            var service = new List<ServicePhase>();
            var offline = new List<OfflinePhase>();
            for (var round = 0; round < rounds; round++)
            {
                if (model is not null) offline.Add(OfflinePhase());
                service.Add(await ServicePhase());
            }
            if (model is not null) offline.Add(OfflinePhase());
            return new LoadTestReport(concurrency, service, offline);
        }
        finally { model?.Dispose(); }
    }

    /// <summary>The upload's content type from the file's extension (image/jpeg for .jpg).</summary>
    private static string ImageContentType(string file)
    {
        var extension = Path.GetExtension(file).TrimStart('.').ToLowerInvariant();
        return "image/" + (extension is "jpg" ? "jpeg" : extension);
    }

    /// <summary>The service's counters (GET /health), or null when it does not report them.</summary>
    private static async Task<(long Batches, long Images, double? ComputeSeconds, double? CpuSeconds, int Workers)?> Counts(HttpClient client, CancellationToken cancellation)
    {
        try
        {
            var health = System.Text.Json.Nodes.JsonNode.Parse(await client.GetStringAsync("/health", cancellation));
            return health?["batches"] is { } batches && health["predicted_images"] is { } images
                ? ((long)batches, (long)images, (double?)health["compute_seconds"], (double?)health["cpu_seconds"], (int?)health["workers"] ?? 1)
                : null;
        }
        catch (HttpRequestException) { return null; }
    }
}
