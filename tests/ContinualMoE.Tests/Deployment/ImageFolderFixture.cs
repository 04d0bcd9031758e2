using ContinualMoE.Data;
using ContinualMoE.Data.Generated;
using SkiaSharp;

namespace ContinualMoE.Tests.Deployment;

/// <summary>Writes generated images as PNG image folders (train/&lt;class&gt;/, test/&lt;class&gt;/), the layout a user feeds
/// to <c>learn</c>: each class is one generated pattern recipe, named "c&lt;id&gt;".</summary>
public static class ImageFolderFixture
{
    private static readonly Lazy<DatasetSplits> Generated = new(() =>
        GeneratedBenchmark.Create(seed: 11, upstreamClasses: 1, continualClasses: 8, trainPerClass: 12, testPerClass: 6).Continual);

    /// <summary>A folder of all eight classes written once per test run (images to predict).</summary>
    public static string Data() => AllClasses.Value;

    private static readonly Lazy<string> AllClasses = new(() =>
        Write(Path.Combine(Path.GetTempPath(), "cmoe-images-" + Guid.NewGuid().ToString("N")), 0, 1, 2, 3, 4, 5, 6, 7));

    /// <summary>A task folder holding generated classes <paramref name="classes"/> (0..7).</summary>
    public static string Write(string folder, params int[] classes)
    {
        foreach (var (split, set) in new[] { ("train", Generated.Value.Train), ("test", Generated.Value.Test) })
            for (var i = 0; i < set.Count; i++)
            {
                var label = set.GetLabel(i);
                if (!classes.Contains(label)) continue;
                var dir = Path.Combine(folder, split, $"c{label}");
                Directory.CreateDirectory(dir);
                File.WriteAllBytes(Path.Combine(dir, $"{i:D4}.png"), Png(set.GetImage(i)));
            }
        return folder;
    }

    public static byte[] Png(RawImage image)
    {
        using var bitmap = new SKBitmap(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (var y = 0; y < image.Height; y++)
            for (var x = 0; x < image.Width; x++)
            {
                byte C(int c) => image[y, x, image.Channels == 1 ? 0 : c];
                bitmap.SetPixel(x, y, new SKColor(C(0), C(1), C(2)));
            }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
