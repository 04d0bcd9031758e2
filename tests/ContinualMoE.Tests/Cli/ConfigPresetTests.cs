using ContinualMoE.Backbones;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Backbones;

namespace ContinualMoE.Tests.Cli;

public class ConfigPresetTests
{
    public static TheoryData<string> Presets()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(RepositoryPaths.Configs, "*.json").Order()) data.Add(Path.GetFileName(file));
        return data;
    }

    /// <summary>Every shipped preset parses, names a known method, dataset and backbone (text presets: a method that runs
    /// on text), and its method settings bind.</summary>
    [Theory]
    [MemberData(nameof(Presets))]
    public void PresetParsesAndItsMethodSettingsBind(string file)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        var config = RunConfig.FromJson(File.ReadAllText(path), path);
        Assert.Contains(config.Method, MethodRegistry.Names);
        if (TextStreams.IsText(config.Dataset))
        {
            // A text preset without a backbone runs on the default language model; its method must support text.
            MethodRegistry.EnsureSupports(config.Method, ContinualMoE.Data.InputModality.Text);
            Assert.True(TextStreams.UsesDefaultLanguageModel(config));
        }
        else
        {
            Assert.Contains(config.Dataset, ContinualMoE.Data.DatasetCatalog.Names);
            VitRegistry.Get(config.Backbone);
        }
        var context = new MethodContext(new VisionTransformer(VitTestModels.Tiny), 20, config.Tasks, TorchSharp.torch.CPU, 1,
            new TrainingSettings(config.Epochs, config.LearningRate, config.BatchSize), new MethodSettings(config.MethodSettings));
        using var learner = MethodRegistry.Create(config.Method, context);
        Assert.Equal(config.Method, learner.Name);
    }
}
