using ContinualMoE.Data;
using ContinualMoE.Experiments;

namespace ContinualMoE.Tests.Cli;

/// <summary>
/// A short class-incremental experiment on real data: split Fashion-MNIST (5 tasks of 2 classes) from Debian's
/// dataset-fashion-mnist package, which .ci/run installs. A randomly initialised ViT maps every image to nearly the same
/// class token and the generated-benchmark backbones transfer poorly to grey clothing, so the test pretrains a nano ViT
/// for a few seconds on 2,000 Fashion-MNIST training images that the continual run never uses (like an ImageNet
/// backbone on CIFAR: related images, not the same ones). A nearest-class-mean learner keeps every class's prototype,
/// so after all five tasks it must stay above three times the 10% chance level (36% measured).
/// </summary>
public class FashionMnistRunTests
{
    [Fact]
    public void SplitFashionMnistRunsEndToEndWellAboveChance()
    {
        Assert.True(File.Exists(Path.Combine(DatasetCatalog.DebianFashionMnistFolder, "train-images-idx3-ubyte.gz")),
            $"Fashion-MNIST not found in {DatasetCatalog.DebianFashionMnistFolder}: apt-get install dataset-fashion-mnist");
        var config = new RunConfig
        {
            Method = "ncm", Dataset = "fashion-mnist", Backbone = "vit_nano_patch4_32", BackboneWeights = null,
            Tasks = 5, BatchSize = 128, Seed = 1993, TrainPerClassLimit = 300, TestPerClassLimit = 200,
        };
        var weights = Path.Combine(Path.GetTempPath(), $"cmoe-nano-{Guid.NewGuid():N}.safetensors");
        var fashion = DatasetCatalog.Load("fashion-mnist");
        var held = Enumerable.Range(50_000, 2_000).ToArray();   // the run below takes the first 300 images per class
        var upstream = new DatasetSplits(new Subset(fashion.Train, held), new Subset(fashion.Train, held[..100]));
        using (var pretrained = BackbonePretraining.Train(ContinualMoE.Backbones.VitRegistry.Get(config.Backbone), upstream,
                   new PretrainSettings(Epochs: 3, BatchSize: 64, LearningRate: 2e-3), TorchSharp.torch.CPU))
            ContinualMoE.Checkpoints.StateDictLoader.Save(pretrained, weights);
        using var experiment = Experiment.Build(config, weights);
        File.Delete(weights);
        Assert.Equal(10, experiment.Scenario.ClassCount);
        Assert.All(experiment.Scenario.Tasks, t => Assert.Equal(2, t.Classes.Count));
        var results = experiment.Trainer().Run(experiment.Learner);
        Assert.Equal(5, results.Accuracy.TaskCount);
        Assert.Equal(5, results.Accuracy.TasksTrained);
        for (var t = 0; t < 5; t++)
        for (var i = 0; i < 5; i++)
            Assert.Equal(i <= t, results.Accuracy.IsRecorded(i, t));
        var final = Enumerable.Range(0, 5).Average(i => results.Accuracy[i, 4]);
        Assert.True(final > 30, $"final average accuracy {final:F1}% is not at least three times the 10% chance level:\n{results.Accuracy.ToCsv()}");
    }
}
