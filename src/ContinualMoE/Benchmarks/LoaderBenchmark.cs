using System.Diagnostics;
using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;
using ContinualMoE.Data.Transforms;

namespace ContinualMoE.Benchmarks;

/// <summary>Figures of one loader benchmark: decoding alone and the pipeline alone on one thread, and the data loader's
/// whole batches (decode + transforms + copy into the batch tensor) with its worker threads.</summary>
public sealed record LoaderBenchmarkResult(
    string Folder, int Images, int ImageSize, bool Augment, string Resampler, int Workers,
    double DecodeImagesPerSecond, double TransformImagesPerSecond, double LoaderImagesPerSecond);

/// <summary>
/// Images/s of the image loader on a folder of image files (ImageFolder layout): what a run on such a folder pays per
/// image before the backbone sees it. Decode and transform figures are single-threaded (cost per core); the loader
/// figure uses <paramref name="workers"/> threads as a run does.
/// </summary>
public static class LoaderBenchmark
{
    public static LoaderBenchmarkResult Run(string folder, int imageSize, bool augment, ImageSettings settings,
        int workers = 0, double secondsPerMeasurement = 3.0, int batchSize = 32)
    {
        var dataset = ImageFolderLoader.Load(folder, "bench", testFraction: 0).Train;
        if (dataset.Count == 0) throw ContinualMoEException.ForFile(folder, "image folder holds no images");
        var pipeline = augment
            ? ImagePipeline.ForTraining(imageSize, augment: true, settings.Mean, settings.Std, 0.08, settings)
            : ImagePipeline.ForEvaluation(imageSize, settings.Mean, settings.Std, settings);

        var next = 0;
        var decode = PerSecond(secondsPerMeasurement, () => { dataset.GetImage(next++ % dataset.Count); return 1; });

        var decoded = Enumerable.Range(0, Math.Min(dataset.Count, 64)).Select(dataset.GetImage).ToArray();
        next = 0;
        var transform = PerSecond(secondsPerMeasurement, () => { pipeline.Apply(decoded[next % decoded.Length], 1, next++); return 1; });

        var loader = new DataLoader(dataset, pipeline, batchSize, shuffle: true, seed: 0, workers: workers);
        var epoch = 0;
        var loading = PerSecond(secondsPerMeasurement, () =>
        {
            var count = 0;
            foreach (var batch in loader.Epoch(epoch++)) using (batch) count += batch.Count;
            return count;
        });
        return new LoaderBenchmarkResult(folder, dataset.Count, imageSize, augment, settings.Resampler,
            workers == 0 ? Environment.ProcessorCount : workers, decode, transform, loading);
    }

    /// <summary>Items per second of <paramref name="step"/> (which returns how many items it processed), after one warm-up call.</summary>
    private static double PerSecond(double seconds, Func<int> step)
    {
        step();
        var clock = Stopwatch.StartNew();
        long items = 0;
        do items += step(); while (clock.Elapsed.TotalSeconds < seconds);
        return items / clock.Elapsed.TotalSeconds;
    }
}
