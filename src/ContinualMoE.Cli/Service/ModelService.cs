using System.IO.Compression;
using System.Text.Json;
using ContinualMoE.Cli.Reporting;
using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Deployment;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ContinualMoE.Cli.Service;

/// <summary>What <c>serve</c> is given: the package, where learning data may be read from, limits, the optional token, and
/// the inference queue's batching and <see cref="Workers"/> (model replicas predicting in parallel, <see cref="InferenceQueue"/>).</summary>
internal sealed record ServiceOptions(string PackageFolder, IReadOnlyList<string> DataRoots, string? BearerToken = null,
    long MaxRequestBytes = 64L << 20, int MaxImagesPerRequest = 256, long MaxUnzippedBytes = 1L << 30, string Urls = "http://127.0.0.1:5000",
    int MaxBatchImages = 64, double MaxBatchDelayMilliseconds = 10, int Workers = 1);

/// <summary>
/// The model service (ASP.NET Core minimal API): predictions through one batching <see cref="InferenceQueue"/>,
/// learning jobs (<see cref="LearningJobs"/>) that switch the served version atomically, the model's description and
/// plots, an OpenAPI document (/openapi/v1.json) and a web page (/).
/// </summary>
internal static class ModelService
{
    private static readonly string[] PublicPaths = ["/", "/health", "/index.html"];

    /// <param name="model">The served version; the other workers' replicas are loaded from the package.</param>
    public static WebApplication Build(ServiceOptions options, DeployedModel model)
    {
        if (options.Workers < 1) throw new ContinualMoEException($"workers {options.Workers}: give at least 1");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxRequestBytes);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<FormOptions>(f => { f.MultipartBodyLengthLimit = options.MaxRequestBytes; f.ValueCountLimit = options.MaxImagesPerRequest + 16; });
        builder.Services.ConfigureHttpJsonOptions(j =>
        {
            j.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            j.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals;
        });
        builder.Services.AddOpenApi();
        var app = builder.Build();
        DeployedModel[] replicas = [model, .. Enumerable.Range(1, options.Workers - 1).Select(_ => DeployedModel.Load(options.PackageFolder, model.Manifest.Version))];
        var queue = new InferenceQueue(replicas, options.MaxBatchImages, TimeSpan.FromMilliseconds(options.MaxBatchDelayMilliseconds));
        var jobs = new LearningJobs(options.PackageFolder, queue);
        var roots = options.DataRoots.Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r))).ToList();
        app.Lifetime.ApplicationStopped.Register(() => { jobs.Idle.Wait(TimeSpan.FromSeconds(30)); queue.Dispose(); });

        app.Use(async (context, next) =>
        {
            if (options.BearerToken is { } token && !PublicPaths.Contains(context.Request.Path.Value)
                && context.Request.Headers.Authorization.ToString() != $"Bearer {token}")
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await context.Response.WriteAsJsonAsync(new ErrorBody("missing or wrong bearer token"));
                return;
            }
            try { await next(context); }
            catch (ContinualMoEException e) when (!context.Response.HasStarted)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsJsonAsync(new ErrorBody(e.Message));
            }
            catch (BadHttpRequestException e) when (!context.Response.HasStarted)
            {
                context.Response.StatusCode = e.StatusCode;
                await context.Response.WriteAsJsonAsync(new ErrorBody(e.Message));
            }
        });

        app.MapOpenApi();
        app.MapGet("/", () => Results.Content(WebPage.Html, "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/health", () =>
            {
                var counts = queue.Counts;
                return Results.Ok(new HealthBody("ok", queue.Manifest.Version, queue.Manifest.Tasks.Count, counts.Images, counts.Batches,
                    counts.ComputeSeconds, Environment.CpuUsage.TotalTime.TotalSeconds, counts.Workers));
            })
            .WithSummary("liveness and the served version");
        app.MapGet("/model", () => Results.Ok(Describe(queue.Manifest)))
            .WithSummary("classes, tasks, capacity, cost and metrics of the served version");

        app.MapPost("/predict", async (HttpRequest request, int? top_k) =>
        {
            if (!request.HasFormContentType || !request.ContentType!.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase))
                return Error(StatusCodes.Status415UnsupportedMediaType, "send images as multipart/form-data (one file field per image)");
            var form = await request.ReadFormAsync();
            if (form.Files.Count == 0) return Error(StatusCodes.Status400BadRequest, "no image files in the form");
            if (form.Files.Count > options.MaxImagesPerRequest)
                return Error(StatusCodes.Status413PayloadTooLarge, $"{form.Files.Count} images exceed the limit of {options.MaxImagesPerRequest} per request");
            var images = new ImageBuffer[form.Files.Count];
            var names = new string[form.Files.Count];
            for (var i = 0; i < images.Length; i++)
            {
                var file = form.Files[i];
                names[i] = string.IsNullOrEmpty(file.FileName) ? $"image{i + 1}" : file.FileName;
                if (file.ContentType is { Length: > 0 } type && !type.StartsWith("image/") && type != "application/octet-stream")
                    return Error(StatusCodes.Status415UnsupportedMediaType, $"{names[i]}: content type '{type}' is not an image");
                var bytes = new byte[file.Length];   // within the request size limit
                await using (var stream = file.OpenReadStream()) await stream.ReadExactlyAsync(bytes);
                // A corrupt image fails here with a one-line reason (400). Decoding and preparing here, on the request's
                // thread, overlaps them with the model computing the previous batch.
                images[i] = queue.Prepare(ImageDecoder.Decode(bytes, names[i]));
            }
            var served = await queue.Predict(images, names, Math.Clamp(top_k ?? 3, 1, 100));
            return Results.Ok(new PredictBody(served.Version, served.Predictions));
        }).WithSummary("top-k classes of uploaded images (multipart/form-data)").Accepts<IFormFileCollection>("multipart/form-data")
          .Produces<PredictBody>().Produces<ErrorBody>(400).Produces<ErrorBody>(415).Produces<ErrorBody>(413);

        app.MapPost("/tasks", async (HttpRequest request, CancellationToken aborted) =>
        {
            string folder;
            if (request.HasJsonContentType())
            {
                var body = await request.ReadFromJsonAsync<TaskRequest>(aborted);
                if (body?.Path is not { Length: > 0 } path) return Error(StatusCodes.Status400BadRequest, "give {\"path\": \"<image folder under a data root>\"}");
                folder = WithinRoots(path, roots);
            }
            else if (request.HasFormContentType)
            {
                var form = await request.ReadFormAsync(aborted);
                if (form.Files.Count != 1 || !form.Files[0].FileName.EndsWith(".zip", StringComparison.OrdinalIgnoreCase))
                    return Error(StatusCodes.Status400BadRequest, "send one .zip file of class folders");
                folder = Path.Combine(Path.GetFullPath(options.PackageFolder), "uploads", Guid.NewGuid().ToString("N")[..12]);
                await using var zip = form.Files[0].OpenReadStream();
                Unzip(zip, folder, options.MaxUnzippedBytes);
            }
            else return Error(StatusCodes.Status415UnsupportedMediaType, "send application/json {\"path\": ...} or a multipart .zip");
            var job = jobs.Start(TaskSource.FromFolder(folder), app.Lifetime.ApplicationStopping);
            return job is null
                ? Error(StatusCodes.Status409Conflict, "a learning job is running; one at a time")
                : Results.Accepted($"/jobs/{job.Id}", job);
        }).WithSummary("learn a folder (under a data root) or an uploaded zip as the next task, in the background")
          .Produces<JobStatus>(202).Produces<ErrorBody>(409).Produces<ErrorBody>(400);

        app.MapGet("/jobs/{id}", (string id) => jobs.Get(id) is { } job ? Results.Ok(job) : Error(StatusCodes.Status404NotFound, $"no job '{id}'"))
            .WithSummary("state and progress of a learning job").Produces<JobStatus>().Produces<ErrorBody>(404);

        app.MapGet("/plots/{name}", async (string name) =>
        {
            var path = Path.Combine(Path.GetTempPath(), $"cmoe-plot-{Guid.NewGuid():N}.png");
            try
            {
                var drawn = name switch
                {
                    "accuracy.png" => DrawAccuracy(queue.Manifest, path),
                    "experts.png" => await queue.WithModel(m => ModelPlots.ExpertUtilisation(m.Learner, path)),
                    _ => false,
                };
                return drawn ? Results.File(await File.ReadAllBytesAsync(path), "image/png") : Error(StatusCodes.Status404NotFound, $"no plot '{name}' for this model");
            }
            finally { File.Delete(path); }
        }).WithSummary("accuracy matrix (accuracy.png) and expert utilisation (experts.png) of the served version");
        return app;
    }

    private static bool DrawAccuracy(PackageManifest manifest, string path)
    {
        if (manifest.Tasks.Count == 0) return false;
        ModelPlots.AccuracyMatrix(manifest, path);
        return true;
    }

    /// <summary>The full path of <paramref name="path"/> if it lies in one of the data roots, also after resolving every
    /// symbolic link on the way (a link inside a root, or a folder reached through one, could point outside it);
    /// otherwise an error that does not reveal whether the path exists.</summary>
    public static string WithinRoots(string path, IReadOnlyList<string> roots)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        static bool Under(string p, string root) => p == root || p.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        var real = RealPath(full);
        var inside = roots.Any(r => Under(full, r) && Under(real, RealPath(r)));
        if (!inside) throw new ContinualMoEException($"path '{path}' is outside the service's data roots" + (roots.Count == 0 ? " (none configured: serve --data-root)" : ""));
        return full;
    }

    /// <summary>The path with every symbolic link among its components resolved (as realpath(3); missing components kept).</summary>
    private static string RealPath(string path, int depth = 0)
    {
        if (depth > 40) throw new ContinualMoEException($"path '{path}' has too many levels of symbolic links");
        var current = Path.GetPathRoot(path)!;
        foreach (var part in path[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            var info = new FileInfo(next);
            if (info.LinkTarget is not null)
                next = RealPath(Path.TrimEndingDirectorySeparator(info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? next), depth + 1);
            current = next;
        }
        return Path.TrimEndingDirectorySeparator(current);
    }

    /// <summary>Extracts a zip of class folders, refusing entries that would land outside <paramref name="target"/>
    /// (zip slip) and archives that unpack to more than <paramref name="maxBytes"/>.</summary>
    public static void Unzip(Stream zip, string target, long maxBytes)
    {
        Directory.CreateDirectory(target);
        var root = Path.GetFullPath(target) + Path.DirectorySeparatorChar;
        long total = 0;
        try
        {
            using var archive = new ZipArchive(zip, ZipArchiveMode.Read);
            foreach (var entry in archive.Entries)
            {
                var destination = Path.GetFullPath(Path.Combine(root, entry.FullName));
                if (!destination.StartsWith(root, StringComparison.Ordinal)) throw new ContinualMoEException($"zip entry '{entry.FullName}' points outside the archive");
                if (entry.FullName.EndsWith('/')) { Directory.CreateDirectory(destination); continue; }
                total += entry.Length;
                if (total > maxBytes) throw new ContinualMoEException($"the zip unpacks to more than {maxBytes >> 20} MiB");
                Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                entry.ExtractToFile(destination);
            }
        }
        catch (InvalidDataException e) { throw new ContinualMoEException($"not a readable zip file: {e.Message}", e); }
    }

    private static IResult Error(int status, string message) => Results.Json(new ErrorBody(message), statusCode: status);

    private static ModelBody Describe(PackageManifest m)
    {
        var accuracy = AccuracyMatrix.FromCsv(m.AccuracyMatrix).ToJagged().Take(m.Tasks.Count).Select(r => r.Take(m.Tasks.Count).ToArray()).ToArray();
        return new ModelBody(m.Version, m.Method, m.Backbone.Spec, m.Capacity, m.ClassNames, m.Tasks, accuracy, m.History, m.Cost);
    }
}

internal sealed record ErrorBody(string Error);
/// <summary>GET /health: the served version and the inference queue's counters since the start; <see cref="ComputeSeconds"/>
/// is the time the <see cref="Workers"/> spent predicting (summed) and <see cref="CpuSeconds"/> the service process's CPU
/// time (the load test reports how busy the workers were and what the service cost in CPU from them).</summary>
internal sealed record HealthBody(string Status, int Version, int Tasks, long PredictedImages, long Batches, double ComputeSeconds, double CpuSeconds, int Workers);
internal sealed record PredictBody(int Version, IReadOnlyList<ImagePrediction> Predictions);
internal sealed record TaskRequest(string? Path);
internal sealed record ModelBody(int Version, string Method, string Backbone, PackageCapacity Capacity, IReadOnlyList<string> Classes,
    IReadOnlyList<LearnedTask> Tasks, double?[][] AccuracyMatrix, IReadOnlyList<VersionRecord> History, Training.MethodCost? Cost);
