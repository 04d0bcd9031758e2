using ContinualMoE.Backbones;
using ContinualMoE.Data;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.HideNorga;

/// <summary>A 4-class, 2-task scenario of 16x16 colour/stripe images the tiny random backbone separates easily.</summary>
internal static class HideNorgaFixture
{
    public const int Classes = 4;

    public static MethodContext Context(int taskCount = 2, MethodSettings? settings = null, int epochs = 1, double rate = 0.01) =>
        new(Backbone(), Classes, taskCount, CPU, 3,
            new TrainingSettings(Epochs: epochs, LearningRate: rate, BatchSize: 8), settings ?? MethodSettings.Empty);

    /// <summary>The tiny backbone with weights re-drawn at 1/sqrt(fan-in) scale: timm's 0.02 init leaves a random ViT's
    /// class token nearly input-independent, which no method could classify from.</summary>
    public static VisionTransformer Backbone(int seed = 1)
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: seed);
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        using (no_grad())
            foreach (var (name, p) in vit.named_parameters())
                if (p.dim() >= 2 && name.EndsWith("weight"))
                    p.copy_(randn(p.shape, generator: generator) / Math.Sqrt(p.numel() / p.shape[0]));
        vit.SetFrozen(true);
        return vit;
    }

    public static MethodSettings Settings(params (string Key, object Value)[] values) =>
        new(values.ToDictionary(v => v.Key, v => System.Text.Json.JsonSerializer.SerializeToElement(v.Value)));

    private static InMemoryImageDataset Images(string name, int perClass, int seed)
    {
        var random = new Random(seed);
        const int size = 16;
        var pixels = new byte[Classes * perClass * size * size * 3];
        var labels = new int[Classes * perClass];
        var n = 0;
        for (var c = 0; c < Classes; c++)
        for (var i = 0; i < perClass; i++, n++)
        {
            labels[n] = c;
            for (var y = 0; y < size; y++)
            for (var x = 0; x < size; x++)
            for (var ch = 0; ch < 3; ch++)
            {
                // Class c: a dominant channel (c % 3) and horizontal (c < 2) or vertical stripes.
                var stripe = ((c < 2 ? y : x) / 2) % 2 == 0;
                var value = (ch == c % 3 ? 200 : 40) + (stripe ? 40 : -20) + random.Next(-20, 21);
                pixels[((n * size + y) * size + x) * 3 + ch] = (byte)Math.Clamp(value, 0, 255);
            }
        }
        return new InMemoryImageDataset(name, Enumerable.Range(0, Classes).Select(c => $"c{c}").ToList(), size, size, 3, pixels, labels, planar: false);
    }

    public static ClassIncrementalScenario Scenario() =>
        ClassIncrementalScenario.Create(new DatasetSplits(Images("train", 16, 1), Images("test", 8, 2)), 2, seed: 5);

    public static DataSource Data() => new(16, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], 8, 7, CPU, workers: 1);
}
