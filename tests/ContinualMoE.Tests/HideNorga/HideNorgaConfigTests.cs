using ContinualMoE.Experiments;
using ContinualMoE.Methods;

namespace ContinualMoE.Tests.HideNorga;

public class HideNorgaConfigTests
{
    [Theory]
    [InlineData("hide-prompt-cifar100-sup21k.json", 0.005, 30)]
    [InlineData("norga-cifar100-sup21k.json", 0.05, 80)]
    [InlineData("hide-prompt-imagenet-r-sup21k.json", 0.005, 30)]
    [InlineData("norga-imagenet-r-sup21k.json", 0.005, 30)]
    [InlineData("hide-prompt-generated-quick.json", 0.005, 10)]
    [InlineData("norga-generated-quick.json", 0.05, 10)]
    public void PresetsParseAndBind(string file, double tapRate, int tapEpochs)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        var config = RunConfig.FromJson(File.ReadAllText(path), path);
        var settings = new MethodSettings(config.MethodSettings);
        var options = config.Method == "norga" ? settings.Bind(Norga.Defaults, "norga") : settings.Bind(new HideOptions(), "hide-prompt");
        Assert.Equal(tapRate, options.TapLearningRate);
        Assert.Equal(tapEpochs, options.TapEpochs);
        Assert.Equal(config.Method == "norga", options.Gate);
    }
}
