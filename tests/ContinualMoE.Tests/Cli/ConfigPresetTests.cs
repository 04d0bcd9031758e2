using System.Text.Json;
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
        // A preset for compare may give other methods their own settings (a section under the method's name).
        foreach (var other in config.MethodSettings.Keys.Where(MethodRegistry.IsMethod))
        {
            using var otherLearner = MethodRegistry.Create(other, context);
            Assert.Equal(other, otherLearner.Name, ignoreCase: true);
        }
    }

    [Fact]
    public void MethodSectionsApplyToTheirMethodOnlyAfterTheSharedSettings()
    {
        static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement.Clone();
        var settings = new MethodSettings(new Dictionary<string, JsonElement>
        {
            ["layers"] = Parse("[\"all\"]"),
            ["rank"] = Parse("4"),
            ["seq-lora"] = Parse("{\"rank\": 16}"),
            ["seta"] = Parse("{\"shared_rank\": 12}"),
        });
        var seq = settings.Bind(new LoraOptions(), "seq-lora");
        Assert.Equal(["all"], seq.Layers);
        Assert.Equal(16, seq.Rank);
        Assert.Equal(4, settings.Bind(new LoraOptions(), "o-lora").Rank);
        // The shared "rank" is not a SETA setting; its own section works.
        Assert.Contains("no setting 'rank'", Assert.Throws<ContinualMoEException>(() => settings.Bind(new Seta.Options(), "seta")).Message);
        var setaOnly = new MethodSettings(new Dictionary<string, JsonElement> { ["seta"] = Parse("{\"shared_rank\": 12}"), ["seq-lora"] = Parse("{\"rank\": 16}") });
        Assert.Equal(12, setaOnly.Bind(new Seta.Options(), "seta").SharedRank);
        // A section's unknown key and a section that is not an object are one-line errors.
        Assert.Contains("no setting 'shared_rank'", Assert.Throws<ContinualMoEException>(() =>
            new MethodSettings(new Dictionary<string, JsonElement> { ["o-lora"] = Parse("{\"shared_rank\": 1}") }).Bind(new LoraOptions(), "o-lora")).Message);
        Assert.Contains("must be an object", Assert.Throws<ContinualMoEException>(() =>
            new MethodSettings(new Dictionary<string, JsonElement> { ["o-lora"] = Parse("3") }).Bind(new LoraOptions(), "o-lora")).Message);
    }
}
