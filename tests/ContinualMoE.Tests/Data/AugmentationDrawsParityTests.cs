using System.Text.Json;
using ContinualMoE.Data;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Training;
using TorchSharp;

namespace ContinualMoE.Tests.Data;

/// <summary>
/// <c>input.rng: torch</c> against a real torch 1.13 DataLoader over torchvision 0.14 transforms. Fixtures/augmentation_draws.json
/// is written by tools/make_augmentation_draws_fixture.py: HiDe-Prompt's CIFAR and folder training transforms (crop,
/// flip, brightness jitter) on small PIL images, a RandomSampler, batch 3, 0 and 2 worker processes, two epochs with the
/// main generator seeded just before each iterator; per sample the dataset index, crop box, flip, brightness factor and
/// output bytes.
/// </summary>
public class AugmentationDrawsParityTests
{
    private static readonly JsonElement Fixture =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "augmentation_draws.json"))).RootElement;

    private static RawImage[] Images() => Fixture.GetProperty("images").EnumerateArray().Select(image => new RawImage(
        image.GetProperty("width").GetInt32(), image.GetProperty("height").GetInt32(), 3,
        Convert.FromBase64String(image.GetProperty("data").GetString()!))).ToArray();

    /// <summary>The fixture's two pipelines as run settings (mean 0, std 1: the fixture stops at ToTensor).</summary>
    private static (RandomResizedCrop Crop, ImagePipeline Pipeline, double Brightness) Pipeline(string name)
    {
        var size = Fixture.GetProperty("size").GetInt32();
        var settings = name switch
        {
            "cifar" => new ImageSettings { TrainInterpolation = "bicubic", BrightnessJitter = Fixture.GetProperty("brightness").GetDouble(), Resampler = "pil", Rng = "torch" },
            "folder" => new ImageSettings { Resampler = "pil", Rng = "torch" },
            _ => throw new InvalidOperationException(name),
        };
        var scaleMin = name == "cifar" ? 0.08 : 0.05;
        var pipeline = ImagePipeline.ForTraining(size, augment: true, [0f, 0f, 0f], [1f, 1f, 1f], scaleMin, settings);
        return (pipeline.Transforms.OfType<RandomResizedCrop>().Single(), pipeline, settings.BrightnessJitter);
    }

    [Fact]
    public void OrderCropsFlipsJitterAndPixelsEqualATorchDataLoader()
    {
        var images = Images();
        var samples = 0;
        foreach (var testCase in Fixture.GetProperty("cases").EnumerateArray())
        {
            var (crop, pipeline, brightness) = Pipeline(testCase.GetProperty("pipeline").GetString()!);
            var workers = testCase.GetProperty("workers").GetInt32();
            var batchSize = testCase.GetProperty("batch_size").GetInt32();
            foreach (var epoch in testCase.GetProperty("epochs").EnumerateArray())
            {
                var expected = epoch.GetProperty("samples").EnumerateArray().ToArray();
                using var draws = new TorchEpochRandomness(epoch.GetProperty("seed").GetUInt64(), images.Length, shuffle: true, workers);
                Assert.Equal(expected.Select(s => s.GetProperty("index").GetInt32()), draws.Order);
                for (var position = 0; position < expected.Length; position++)
                {
                    var where = $"{testCase.GetProperty("pipeline")} workers {workers} seed {epoch.GetProperty("seed")} sample {position}";
                    var sample = expected[position];
                    var image = images[draws.Order[position]];
                    var stream = (TorchRandom)draws.ForBatch(position / batchSize);

                    // Read the draws as the generator does, rewind, then run the real pipeline on the same stream.
                    using var state = stream.Generator.get_state();
                    var box = crop.SampleCrop(image.Height, image.Width, stream);
                    Assert.True(sample.GetProperty("box").EnumerateArray().Select(v => v.GetInt32()).SequenceEqual(new[] { box.Top, box.Left, box.Height, box.Width }), where);
                    Assert.True(sample.GetProperty("flip").GetBoolean() == stream.Bernoulli(0.5), where);
                    if (brightness > 0)
                    {
                        stream.ColorJitterOrder();
                        Assert.True((float)sample.GetProperty("factor").GetDouble() == (float)stream.Uniform(1 - brightness, 1 + brightness), where);
                    }
                    stream.Generator.set_state(state);

                    var output = pipeline.Apply(image, stream);
                    var bytes = Convert.FromBase64String(sample.GetProperty("pixels").GetString()!);
                    for (var i = 0; i < bytes.Length; i++)
                    {
                        int y = i / 3 / output.Width, x = i / 3 % output.Width, c = i % 3;
                        var ours = output.Data[(c * output.Height + y) * output.Width + x] * 255f;
                        Assert.True(Math.Abs(ours - bytes[i]) < 1e-3, $"{where}: pixel ({y}, {x}, {c}) is {ours}, torchvision {bytes[i]}");
                    }
                    samples++;
                }
            }
        }
        Assert.Equal(56, samples);
    }

    /// <summary>Varied-size images for the loader (InMemoryImageDataset holds one size).</summary>
    private sealed class ImageList(RawImage[] images) : IImageDataset
    {
        public string Name => "fixture";
        public int Count => images.Length;
        public IReadOnlyList<string> ClassNames => ["a"];
        public int GetLabel(int index) => 0;
        public RawImage GetImage(int index) => images[index];
    }

    [Fact]
    public void TheLoaderDrawsEachBatchFromItsWorkersStreamInOrder()
    {
        var images = Images();
        var (_, pipeline, _) = Pipeline("cifar");
        const int seed = 3, batchSize = 2, workers = 2;
        var loader = new DataLoader(new ImageList(images), pipeline, batchSize, shuffle: true, seed, workers: 2) { TorchWorkers = workers };
        foreach (var epoch in new[] { 0, 1 })
        {
            // The reference: one TorchEpochRandomness with the loader's epoch seed, samples run in order.
            using var draws = new TorchEpochRandomness(unchecked((uint)Seeds.Combine(seed, epoch)), images.Length, shuffle: true, workers);
            Assert.Equal(draws.Order, loader.Order(epoch));
            var position = 0;
            foreach (var batch in loader.Epoch(epoch))
                using (batch)
                {
                    var data = batch.Images.data<float>().ToArray();
                    var perSample = data.Length / batch.Count;
                    for (var k = 0; k < batch.Count; k++, position++)
                    {
                        Assert.Equal(draws.Order[position], batch.Indices[k]);
                        var expected = pipeline.Apply(images[draws.Order[position]], draws.ForBatch(position / batchSize)).ToArray();
                        Assert.Equal(expected, data.AsSpan(k * perSample, perSample).ToArray());
                    }
                }
            Assert.Equal(images.Length, position);
        }
        // Both epochs differ, and the project's draws give other crops from the same seed.
        Assert.NotEqual(loader.Order(0), loader.Order(1));
        var project = new DataLoader(new ImageList(images), pipeline, batchSize, shuffle: true, seed, workers: 2);
        Assert.NotEqual(project.Order(0), loader.Order(0));
    }

    [Fact]
    public void RunSettingsReachTheLoaderAndBadValuesAreOneLineErrors()
    {
        var images = new ImageList(Images());
        DataSource Source(ImageSettings input) => new(6, [0f, 0f, 0f], [1f, 1f, 1f], 2, 1, torch.CPU, image: input);
        var torchLoader = (DataLoader)Source(new ImageSettings { Rng = "torch", TorchWorkers = 3 }).Loader(images, augment: true, shuffle: true);
        Assert.Equal(3, torchLoader.TorchWorkers);
        Assert.Null(((DataLoader)Source(new ImageSettings()).Loader(images, augment: true, shuffle: true)).TorchWorkers);
        Assert.Contains("input.rng must be project or torch", Assert.Throws<ContinualMoEException>(() => new ImageSettings { Rng = "numpy" }.Validate()).Message);
        Assert.Contains("input.torch_workers", Assert.Throws<ContinualMoEException>(() => new ImageSettings { TorchWorkers = -1 }.Validate()).Message);
    }
}
