using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Deployment;

namespace ContinualMoE.Tests.Deployment;

/// <summary>The service's prediction path: images prepared one by one on request threads and batched by the caller
/// predict exactly as <c>predict</c>'s data loader batches them.</summary>
public class PreparedPredictionTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-prep-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void PreparedImagesInCallerBatchesPredictAsTheDataLoaderDoes()
    {
        using var model = DeployedModel.Create(ModelPackageTests.NewModel("smope"), null);
        model.Learn(TaskSource.FromFolder(ImageFolderFixture.Write(Path.Combine(root, "task"), 0, 1)));
        var files = Directory.GetFiles(Path.Combine(ImageFolderFixture.Data(), "test"), "*.png", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Take(10).ToList();
        var offline = model.Predict(UnlabelledImages.FromPaths(files), topK: 2);

        // Batches of other sizes than the loader's, as the service's queue makes them.
        var served = new List<ImagePrediction>();
        foreach (var chunk in files.Chunk(3))
        {
            var prepared = chunk.Select(f => model.PrepareImage(ImageDecoder.Decode(File.ReadAllBytes(f), f))).ToList();
            served.AddRange(model.Predict(prepared, chunk, topK: 2));
            foreach (var buffer in prepared) buffer.Return();
        }
        Assert.Equal(files, served.Select(p => p.Source));
        for (var i = 0; i < files.Count; i++)
        {
            Assert.Equal(offline[i].Top.Select(t => t.Label), served[i].Top.Select(t => t.Label));
            for (var j = 0; j < 2; j++) Assert.Equal(offline[i].Top[j].Probability, served[i].Top[j].Probability, 5);
            Assert.NotNull(served[i].Routing);   // SMoPE reports its experts on this path too
            Assert.Equal(offline[i].Routing!.Select(r => r.Experts), served[i].Routing!.Select(r => r.Experts));
        }
        Assert.Empty(model.Predict(Array.Empty<ImageBuffer>(), Array.Empty<string>()));
    }

    [Fact]
    public void StackingImagesOfDifferentSizesNamesThem()
    {
        var pipeline = new ImagePipeline(new GreyToRgb());
        var small = pipeline.Apply(new RawImage(4, 4, 1, new byte[16]), 0, 0);
        var large = pipeline.Apply(new RawImage(8, 8, 1, new byte[64]), 0, 0);
        using (var stacked = DataLoader.StackImages([small, small], "uploads", i => $"image {i}"))
            Assert.Equal([2L, 3, 4, 4], stacked.shape);
        var error = Assert.Throws<ContinualMoEException>(() => DataLoader.StackImages([small, large], "uploads", i => $"f{i}.png"));
        Assert.Equal("uploads: f1.png became 3x8x8 but f0.png became 3x4x4; the pipeline must produce a fixed size (add a Resize)", error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
